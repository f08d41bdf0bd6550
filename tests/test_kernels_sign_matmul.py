"""Sign columns packed along rows, the table-lookup product S^T g and the padding-tap sums, vs naive twins."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from numbnn.errors import InputError
from numbnn.kernels import pack_sign_columns, padding_tap_sums, sign_rows_matmul
from numbnn.kernels.sign_matmul import _column_runs, _sign_rows_matmul


@st.composite
def conv_case(draw):
    k = draw(st.sampled_from([1, 2, 3]))
    stride, padding, dilation = draw(st.integers(1, 2)), draw(st.integers(0, 2)), draw(st.integers(1, 2))
    span = dilation * (k - 1) + 1
    h = draw(st.integers(max(1, span - 2 * padding), 7))
    w = draw(st.integers(max(1, span - 2 * padding), 7))
    n, c = draw(st.integers(1, 3)), draw(st.sampled_from([1, 3, 8, 16, 32, 33]))  # 16, 32: whole-vector runs
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, h, w, c)).astype(draw(st.sampled_from([np.float32, np.float64])))
    x.flat[::7] = 0.0  # sign(0) = +1
    return x, dict(kernel_size=k, stride=stride, padding=padding, dilation=dilation), rng


@settings(max_examples=40)
@given(conv_case())
def test_pack_sign_columns_matches_naive(case):
    x, args, _ = case
    np.testing.assert_array_equal(pack_sign_columns(x, **args), naive.pack_sign_columns(x, **args))


@settings(max_examples=40)
@given(conv_case(), st.integers(1, 2))
def test_pack_sign_columns_of_x_plus_a_shift(case, groups):
    """shift: the columns of sign(x + shift), padding taps still +1: the naive columns of x + shift (16- and
    32-channel runs take the 8-row stores, the others the bit-by-bit loop)."""
    x, args, rng = case
    x = np.concatenate([x] * groups, axis=-1)
    shift = (0.5 * rng.standard_normal(x.shape[-1])).astype(x.dtype)
    x[..., ::3] = -shift[::3]  # x + shift exactly 0: sign +1
    np.testing.assert_array_equal(pack_sign_columns(x, **args, groups=groups, shift=shift),
                                  naive.pack_sign_columns(x + shift, **args, groups=groups))


@settings(max_examples=40)
@given(conv_case(), st.sampled_from([1, 5, 16, 17, 40, 64]))  # 17 and 64: two 16-channel blocks per task
def test_sign_rows_matmul_and_padding_sums_match_naive(case, out_channels):
    """Row counts that are not multiples of 32 and channel counts that are not multiples of 16 included."""
    x, args, rng = case
    bits = pack_sign_columns(x, **args)
    rows = naive.unpack_sign_rows(bits, 10**9).shape[0]
    ho = naive.out_size(x.shape[1], args["kernel_size"], args["stride"], args["padding"], args["dilation"])
    wo = naive.out_size(x.shape[2], args["kernel_size"], args["stride"], args["padding"], args["dilation"])
    m = x.shape[0] * ho * wo
    assert -(-m // 32) * 32 == rows
    g = rng.standard_normal((m, out_channels)).astype(np.float32)
    got = sign_rows_matmul(bits, g)
    assert got.dtype == np.float32 and got.shape == (bits.shape[2], out_channels)
    np.testing.assert_allclose(got, naive.sign_rows_matmul(bits, g), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(padding_tap_sums(g, x.shape[1:3], **args), naive.padding_tap_sums(g, x.shape[1:3], **args),
                               rtol=1e-6, atol=1e-5)


@settings(max_examples=40)
@given(conv_case(), st.integers(2, 4), st.sampled_from([1, 5, 16, 17]))
def test_grouped_columns_and_product_are_each_groups_own(case, groups, per_group_out):
    """Grouped bits are each group's columns side by side; the grouped product gives group g's output
    channels S_g^T g_g (channels per group not a multiple of 16 included), bit for bit what packing
    and multiplying the group alone gives."""
    x, args, rng = case
    x = np.concatenate([x] + [rng.standard_normal(x.shape).astype(x.dtype) for _ in range(groups - 1)], axis=-1)
    bits = pack_sign_columns(x, **args, groups=groups)
    np.testing.assert_array_equal(bits, naive.pack_sign_columns(x, **args, groups=groups))
    m = len(naive.im2col(x[..., :1], **args))
    g = rng.standard_normal((m, groups * per_group_out)).astype(np.float32)
    got = sign_rows_matmul(bits, g, groups)
    assert got.shape == (bits.shape[2] // groups, g.shape[1]) and got.T.flags.c_contiguous
    np.testing.assert_allclose(got, naive.sign_rows_matmul(bits, g, groups), rtol=1e-5, atol=1e-4)
    for i, (part, g_part) in enumerate(zip(np.split(x, groups, axis=-1), np.split(g, groups, axis=1))):
        alone = sign_rows_matmul(pack_sign_columns(part, **args), np.ascontiguousarray(g_part))
        np.testing.assert_array_equal(got[:, i * per_group_out : (i + 1) * per_group_out], alone)


def test_a_large_product_is_accurate_to_float32_rounding():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 7, 7, 64)).astype(np.float32)
    bits = pack_sign_columns(x, 3, padding=1)  # 294 rows: three packing tasks of 128 rows, a partial last chunk
    np.testing.assert_array_equal(bits, naive.pack_sign_columns(x, 3, padding=1))
    g = rng.standard_normal((6 * 49, 128)).astype(np.float32)
    expected = naive.sign_rows_matmul(bits, g)
    np.testing.assert_allclose(sign_rows_matmul(bits, g), expected, rtol=0, atol=2e-5 * np.abs(expected).max())


@pytest.mark.parametrize("channel_tasks, columns, threads, runs", [
    (8, 2304, 2, 1),   # reactnet-a's widest conv: the channel blocks alone split evenly
    (4, 1152, 2, 1),
    (1, 288, 2, 2),    # one 32-channel block (bnn-small): its columns in two runs, one per thread
    (3, 576, 2, 2),    # three blocks on two threads: six tasks, three each
    (1, 1, 2, 1),      # never more runs than columns
    (5, 900, 4, 4),    # five blocks on four threads: twenty tasks
    (1, 300, 3, 3),
])
def test_column_runs_split_work_evenly_over_threads(channel_tasks, columns, threads, runs):
    assert _column_runs.py_func(channel_tasks, columns, threads) == runs


@settings(max_examples=20)
@given(st.integers(1, 12), st.sampled_from([16, 32, 48, 96]), st.integers(1, 7))
def test_any_split_of_the_columns_gives_the_same_product(columns, out_channels, threads):
    """The split a thread count asks for (here up to 7, whatever the machine has) never leaves a task
    without columns and never changes a sum: 5 columns for 4 runs, say, are 3 runs of 2, 2 and 1."""
    rng = np.random.default_rng(columns * 100 + out_channels)
    bits = rng.integers(0, 256, (2, 4, columns), dtype=np.uint8)
    g = rng.standard_normal((50, out_channels)).astype(np.float32)
    bits[1, 2] &= np.uint8(0b11)  # rows 50-63 (past M) hold clear bits, as pack_sign_columns leaves them
    bits[1, 3] = 0
    np.testing.assert_array_equal(_sign_rows_matmul(bits, g, 1, threads), _sign_rows_matmul(bits, g, 1, 1))


def test_the_product_does_not_depend_on_the_thread_count():
    """The runs of columns a task takes change with the threads; each column's sums keep their order."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 7, 7, 48)).astype(np.float32)
    bits = pack_sign_columns(x, 3, padding=1)
    g = rng.standard_normal((4 * 49, 96)).astype(np.float32)
    before = numba.get_num_threads()
    try:
        results = []
        for threads in sorted({1, before}):
            numba.set_num_threads(threads)
            results.append(sign_rows_matmul(bits, g))
    finally:
        numba.set_num_threads(before)
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: pack_sign_columns(np.zeros((2, 4, 4)), 3), "x"),
        (lambda: pack_sign_columns(np.zeros((1, 4, 4, 2), np.int8), 3), "x"),
        (lambda: sign_rows_matmul(np.zeros((1, 4, 5), np.uint8), np.zeros((33, 16), np.float32)), "rows"),
        (lambda: sign_rows_matmul(np.zeros((1, 3, 5), np.uint8), np.zeros((20, 16), np.float32)), "bits"),
        (lambda: sign_rows_matmul(np.zeros((1, 4, 5), np.uint8), np.zeros((20, 16))), "g"),
        (lambda: padding_tap_sums(np.zeros((10, 3)), (4, 4), 3, padding=1), "output maps"),
        (lambda: pack_sign_columns(np.zeros((1, 4, 4, 6)), 3, groups=4), "groups"),
        (lambda: pack_sign_columns(np.zeros((1, 4, 4, 6)), 3, shift=np.zeros(4)), "shift"),
        (lambda: sign_rows_matmul(np.zeros((1, 4, 6), np.uint8), np.zeros((20, 16), np.float32), 4), "groups"),
    ],
)
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(InputError, match=name):
        call()
