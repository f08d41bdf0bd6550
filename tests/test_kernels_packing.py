"""pack_bits / unpack_bits: exact bit layout against naive loops, round trips, grouped packing, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from numbnn.errors import InputError
from numbnn.kernels import pack_activations, pack_bits, pack_conv_weight, unpack_bits

DTYPES = [np.float32, np.float64, np.int8]


@st.composite
def signed_array(draw, max_rank=4, max_side=5, max_packed=200):
    """An array of rank 1..4 with one axis (returned too) up to `max_packed` long; zeros and -0.0 included."""
    rank = draw(st.integers(1, max_rank))
    axis = draw(st.integers(-rank, rank - 1))
    shape = [draw(st.integers(1, max_side)) for _ in range(rank)]
    shape[axis] = draw(st.integers(1, max_packed))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-3, 4, size=shape).astype(dtype)  # about 1 in 7 values is exactly 0
    if dtype != np.int8:
        x[x == 0] = draw(st.sampled_from([0.0, -0.0]))
        x *= rng.random(shape).astype(dtype) + 0.5
    return x, axis


@settings(max_examples=80)
@given(signed_array())
def test_pack_bits_exact_layout(case):
    x, axis = case
    got = pack_bits(x, axis=axis)
    assert got.dtype == np.uint64
    expected_shape = list(x.shape)
    expected_shape[axis] = (x.shape[axis] + 63) // 64
    assert got.shape == tuple(expected_shape)
    np.testing.assert_array_equal(got, naive.pack_bits(x, axis))


@settings(max_examples=80)
@given(signed_array())
def test_unpack_inverts_pack(case):
    x, axis = case
    n = x.shape[axis]
    values = unpack_bits(pack_bits(x, axis=axis), n, axis=axis)
    assert values.dtype == np.float32 and values.shape == x.shape
    np.testing.assert_array_equal(values, naive.signs(x))


@settings(max_examples=40)
@given(st.integers(1, 300), st.integers(0, 2**32 - 1))
def test_unpack_matches_naive_on_random_words(n, seed):
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 2**64, size=(3, (n + 63) // 64), dtype=np.uint64)
    np.testing.assert_array_equal(unpack_bits(words, n), naive.unpack_bits(words, n))


@pytest.mark.parametrize("n", [1, 63, 64, 65, 127, 128, 200])
def test_tail_bits_are_zero_even_when_the_next_row_is_negative(n):
    x = -np.ones((5, n), dtype=np.float32)
    packed = pack_bits(x)
    assert (np.bitwise_count(packed).sum(axis=1) == n).all()
    used = n - 64 * (packed.shape[1] - 1)  # bits of the last word that hold real elements
    if used < 64:
        assert (packed[:, -1] >> np.uint64(used) == 0).all()


@pytest.mark.parametrize("shape", [(1000, 77), (100_003,), (300, 40, 130)])
def test_large_arrays_take_the_parallel_path_exactly(shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    packed = pack_bits(x)
    np.testing.assert_array_equal(packed, naive_pack_fast(x))
    np.testing.assert_array_equal(unpack_bits(packed, shape[-1]), naive.signs(x))


def naive_pack_fast(x):
    """Vectorised twin of naive.pack_bits along the last axis (the loop version is too slow at this size)."""
    n = x.shape[-1]
    bits = np.zeros(x.shape[:-1] + (64 * ((n + 63) // 64),), dtype=np.uint64)
    bits[..., :n] = x < 0
    bits = bits.reshape(x.shape[:-1] + (-1, 64))
    return (bits << np.arange(64, dtype=np.uint64)).sum(axis=-1, dtype=np.uint64)


@settings(max_examples=30)
@given(st.integers(1, 4), st.integers(1, 150), st.integers(0, 2**32 - 1))
def test_pack_activations_packs_each_group_on_its_own(groups, per_group, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 2, groups * per_group)).astype(np.float32)
    got = pack_activations(x, groups=groups)
    parts = [naive.pack_bits(x[..., g * per_group : (g + 1) * per_group]) for g in range(groups)]
    np.testing.assert_array_equal(got, np.concatenate(parts, axis=-1))


@settings(max_examples=40)
@given(st.integers(1, 4), st.sampled_from([1, 3, 16, 32, 33, 64, 65, 150]), st.sampled_from([np.float32, np.float64]),
       st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_pack_activations_of_x_plus_a_shift(groups, per_group, dtype, pixels, seed):
    """shift: the signs of x + shift (rounded to x's dtype), never written: the naive packing of x + shift,
    per group; groups narrower than a word, a word and a tail, and a last pixel whose word is built value by value."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, pixels, 2, groups * per_group)).astype(dtype)
    shift = (0.5 * rng.standard_normal(groups * per_group)).astype(dtype)
    x[..., ::5] = -shift[::5]  # x + shift exactly 0: sign +1
    got = pack_activations(x, groups=groups, shift=shift)
    shifted = x + shift
    parts = [naive.pack_bits(shifted[..., g * per_group : (g + 1) * per_group]) for g in range(groups)]
    np.testing.assert_array_equal(got, np.concatenate(parts, axis=-1))


def test_pack_conv_weight_packs_input_channels():
    w = np.random.default_rng(2).standard_normal((4, 3, 3, 70))
    np.testing.assert_array_equal(pack_conv_weight(w), naive.pack_bits(w, -1))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: pack_bits(np.zeros(5, np.int32)), "x"),
        (lambda: pack_bits(np.zeros(5, np.uint64)), "x"),
        (lambda: pack_bits(np.float32(1.0)), "x"),
        (lambda: pack_bits(np.zeros((2, 3), np.float32), axis=2), "axis"),
        (lambda: pack_bits(np.zeros((2, 3), np.float32), axis=-3), "axis"),
        (lambda: pack_bits([1.0, -1.0]), "x"),
        (lambda: unpack_bits(np.zeros((2, 2), np.uint64), 200), "n=200"),
        (lambda: unpack_bits(np.zeros((2, 2), np.uint64), -1), "n"),
        (lambda: unpack_bits(np.zeros((2, 2), np.int64), 100), "p"),
        (lambda: unpack_bits(np.zeros((2, 2), np.uint64), 100, axis=5), "axis"),
        (lambda: pack_activations(np.zeros((1, 2, 2, 6), np.float32), groups=4), "groups"),
        (lambda: pack_activations(np.zeros((2, 2, 6), np.float32)), "x"),
        (lambda: pack_activations(np.zeros((1, 2, 2, 6), np.float32), groups=0), "groups"),
        (lambda: pack_activations(np.zeros((1, 2, 2, 6), np.float32), shift=np.zeros(5, np.float32)), "shift"),
        (lambda: pack_activations(np.zeros((1, 2, 2, 6), np.float32), shift=np.zeros(6)), "shift"),
        (lambda: pack_activations(np.zeros((1, 2, 2, 6), np.int8), shift=np.zeros(6, np.int8)), "shift"),
        (lambda: pack_conv_weight(np.zeros((2, 3, 6), np.float32)), "w"),
    ],
)
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(InputError, match=name):
        call()
