"""binary_matmul / binary_conv2d: exact equality with the naive +1/-1 float references, and errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from numbnn.errors import InputError
from numbnn.kernels import binary_conv2d, binary_matmul, pack_activations, pack_bits, pack_conv_weight
from numbnn.kernels.binary_gemm import ROW_BLOCK
from numbnn.kernels.tiles import TILE_COLS


def random_signs(rng, shape):
    """Random floats with some exact zeros (sign(0) = +1 must hold through packing)."""
    x = rng.standard_normal(shape)
    x[rng.random(shape) < 0.05] = 0.0
    return x


@settings(max_examples=60)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 300), st.integers(0, 2**32 - 1))
def test_binary_matmul_matches_naive(m, n, k, seed):
    rng = np.random.default_rng(seed)
    a, b = pack_bits(random_signs(rng, (m, k))), pack_bits(random_signs(rng, (n, k)))
    got = binary_matmul(a, b, k)
    assert got.dtype == np.int32 and got.shape == (m, n)
    np.testing.assert_array_equal(got, naive.binary_matmul(a, b, k))


def test_binary_matmul_extremes():
    ones = pack_bits(np.ones((2, 130)))
    minus = pack_bits(-np.ones((3, 130)))
    np.testing.assert_array_equal(binary_matmul(ones, minus, 130), np.full((2, 3), -130))
    np.testing.assert_array_equal(binary_matmul(minus, minus, 130), np.full((3, 3), 130))


@st.composite
def conv_case(draw):
    groups = draw(st.integers(1, 4))
    c_group = draw(st.integers(1, 300 // groups))
    out_channels = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    min_h, min_w = max(1, dh * (kh - 1) + 1 - 2 * ph), max(1, dw * (kw - 1) + 1 - 2 * pw)
    h, width = draw(st.integers(min_h, min_h + 5)), draw(st.integers(min_w, min_w + 5))
    batch = draw(st.sampled_from([1, 1, 2]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = random_signs(rng, (batch, h, width, groups * c_group))
    w = random_signs(rng, (out_channels, kh, kw, c_group))
    args = dict(
        stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), pad_value=draw(st.sampled_from([0, 1, -1])), groups=groups
    )
    return x, w, args


@settings(max_examples=80)
@given(conv_case())
def test_binary_conv2d_matches_naive(case):
    x, w, args = case
    c = x.shape[-1]
    xp, wp = pack_activations(x, groups=args["groups"]), pack_conv_weight(w)
    got = binary_conv2d(xp, wp, c, **args)
    expected = naive.binary_conv2d(xp, wp, c, **args)
    assert got.dtype == np.int32 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    # and the same as a float convolution of the signs with the border filled with pad_value
    np.testing.assert_array_equal(got, naive.float_conv2d(naive.signs(x), naive.signs(w), **args))


def test_zero_padding_counts_border_taps_as_zero():
    x = pack_bits(np.ones((1, 1, 1, 10)))
    w = pack_bits(np.ones((1, 3, 3, 10)))
    assert binary_conv2d(x, w, 10, padding=1, pad_value=0)[0, 0, 0, 0] == 10
    assert binary_conv2d(x, w, 10, padding=1, pad_value=1)[0, 0, 0, 0] == 90
    assert binary_conv2d(x, w, 10, padding=1, pad_value=-1)[0, 0, 0, 0] == 10 - 80


def _conv_inputs(c=10, groups=1, o=2):
    x = np.zeros((1, 4, 4, groups * ((c // groups + 63) // 64)), np.uint64)
    w = np.zeros((o, 3, 3, (c // groups + 63) // 64), np.uint64)
    return x, w


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: binary_matmul(np.zeros((2, 2), np.int64), np.zeros((2, 2), np.uint64), 100), "a"),
        (lambda: binary_matmul(np.zeros((2, 2), np.uint64), np.zeros((2, 2, 1), np.uint64), 100), "b"),
        (lambda: binary_matmul(np.zeros((2, 2), np.uint64), np.zeros((2, 3), np.uint64), 100), "b has 3 words"),
        (lambda: binary_matmul(np.zeros((2, 2), np.uint64), np.zeros((2, 2), np.uint64), 300), "a has 2 words"),
        (lambda: binary_matmul(np.zeros((2, 2), np.uint64), np.zeros((2, 2), np.uint64), -5), "k"),
        (lambda: binary_conv2d(np.zeros((4, 4, 1), np.uint64), _conv_inputs()[1], 10), "x"),
        (lambda: binary_conv2d(_conv_inputs()[0].astype(np.float32), _conv_inputs()[1], 10), "x"),
        (lambda: binary_conv2d(_conv_inputs()[0], _conv_inputs()[1].astype(np.int64), 10), "w"),
        (lambda: binary_conv2d(*_conv_inputs(), 100), "x has 1 words"),
        (lambda: binary_conv2d(_conv_inputs()[0], np.zeros((2, 3, 3, 2), np.uint64), 10), "w has 2 words"),
        (lambda: binary_conv2d(*_conv_inputs(), 0), "in_channels"),
        (lambda: binary_conv2d(*_conv_inputs(), 10, stride=0), "stride"),
        (lambda: binary_conv2d(*_conv_inputs(), 10, padding=-1), "padding"),
        (lambda: binary_conv2d(*_conv_inputs(), 10, dilation=(1, 0)), "dilation"),
        (lambda: binary_conv2d(*_conv_inputs(), 10, pad_value=2), "pad_value"),
        (lambda: binary_conv2d(*_conv_inputs(), 10, dilation=3), "too small"),
        (lambda: binary_conv2d(*_conv_inputs(c=10, groups=2), 10, groups=3), "groups"),
        (lambda: binary_conv2d(*_conv_inputs(c=10, groups=2, o=3), 10, groups=2), "groups"),
        (lambda: binary_conv2d(*_conv_inputs(), 10, groups=0), "groups"),
    ],
)
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(InputError, match=name):
        call()


# ---- the register-tiled paths: full tiles, edge tiles, several parallel blocks -------------------


@settings(max_examples=25)
@given(
    st.integers(1, 3), st.integers(-3, 3), st.integers(1, 3), st.integers(-31, 31), st.integers(1, 200), st.integers(0, 2**32 - 1)
)
def test_binary_matmul_full_and_edge_tiles(row_tiles, row_extra, col_panels, col_extra, k, seed):
    """Shapes around multiples of the tile (TILE_ROWS x TILE_COLS) and of the row block, so full
    tiles, partial last rows/columns and the zero-padded last row block are all exercised."""
    m = max(1, row_tiles * ROW_BLOCK + row_extra)
    n = max(1, col_panels * TILE_COLS + col_extra)
    rng = np.random.default_rng(seed)
    a, b = pack_bits(random_signs(rng, (m, k))), pack_bits(random_signs(rng, (n, k)))
    np.testing.assert_array_equal(binary_matmul(a, b, k), naive_matmul_fast(a, b, k))


def naive_matmul_fast(a, b, k):
    """naive.binary_matmul without the per-bit Python loop (too slow at these sizes): unpack with numpy."""
    bits = np.arange(64, dtype=np.uint64)

    def signs(p):
        unpacked = ((p[:, :, None] >> bits) & np.uint64(1)).reshape(p.shape[0], -1)[:, :k]
        return 1 - 2 * unpacked.astype(np.int64)

    return (signs(a) @ signs(b).T).astype(np.int32)


@settings(max_examples=20)
@given(
    st.integers(1, 2),
    st.integers(1, 80),
    st.sampled_from([1, 2, 3]),
    st.integers(1, 130),
    st.sampled_from([0, 1, -1]),
    st.integers(1, 2),
    st.integers(9, 13),
    st.integers(0, 2**32 - 1),
)
def test_binary_conv2d_full_and_edge_tiles(groups, per_group_out, kernel, c_group, pad_value, stride, size, seed):
    """Up to 80 output channels per group (two full 32-wide panels plus an edge panel) and more output
    pixels than one parallel block (CONV_BLOCK), with the padding correction on every path."""
    rng = np.random.default_rng(seed)
    x = random_signs(rng, (2, size, 11, groups * c_group))
    w = random_signs(rng, (groups * per_group_out, kernel, kernel, c_group))
    args = dict(stride=stride, padding=1, pad_value=pad_value, groups=groups)
    got = binary_conv2d(pack_activations(x, groups=groups), pack_conv_weight(w), groups * c_group, **args)
    np.testing.assert_array_equal(got, naive.float_conv2d(naive.signs(x), naive.signs(w), **args))


@pytest.mark.parametrize("threads", [1, 2])
def test_few_row_blocks_share_out_the_column_panels(threads):
    """A batch-1 product (one row block) splits the column panels over tasks, exactly; a batch-1
    convolution (one pixel block, five panels) stays exact too."""
    import numba

    from numbnn.kernels.tiles import column_splits

    threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        assert column_splits(1, 7, threads) == min(7, 2 * threads)
        assert column_splits(2 * threads, 7, threads) == 1
        rng = np.random.default_rng(7)
        a, b = pack_bits(random_signs(rng, (3, 150))), pack_bits(random_signs(rng, (7 * TILE_COLS - 5, 150)))
        np.testing.assert_array_equal(binary_matmul(a, b, 150), naive_matmul_fast(a, b, 150))
        x, w = random_signs(rng, (1, 5, 4, 70)), random_signs(rng, (5 * TILE_COLS - 3, 3, 3, 70))
        for pad_value in (0, -1):
            got = binary_conv2d(pack_activations(x), pack_conv_weight(w), 70, padding=1, pad_value=pad_value)
            np.testing.assert_array_equal(got, naive.float_conv2d(naive.signs(x), naive.signs(w), padding=1, pad_value=pad_value))
    finally:
        numba.set_num_threads(previous)
