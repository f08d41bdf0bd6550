"""threshold_pack / affine_thresholds: packed sign of a per-channel affine map of int32 accumulators."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from numbnn.errors import InputError
from numbnn.kernels import affine_thresholds, threshold_pack


@settings(max_examples=40)
@given(st.integers(1, 4), st.integers(1, 200), st.integers(0, 2**32 - 1))
def test_threshold_pack_matches_naive(rows, channels, seed):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-100, 100, size=(rows, 3, channels)).astype(np.int32)
    thresholds = rng.integers(-110, 110, size=channels).astype(np.int64)
    flip = rng.random(channels) < 0.5
    got = threshold_pack(acc, thresholds, flip)
    assert got.shape == (rows, 3, (channels + 63) // 64) and got.dtype == np.uint64
    np.testing.assert_array_equal(got, naive.threshold_pack(acc, thresholds, flip))


@settings(max_examples=60)
@given(st.integers(1, 150), st.sampled_from([1e-3, 0.1, 1.0, 7.0]), st.integers(0, 2**32 - 1))
def test_thresholds_reproduce_the_sign_of_the_affine_map(channels, magnitude, seed):
    rng = np.random.default_rng(seed)
    scale = rng.standard_normal(channels) * magnitude
    scale[rng.random(channels) < 0.15] = 0.0
    crossing = rng.integers(-40, 40, size=channels)
    # half the channels cross zero exactly at an integer accumulator (the y == 0 -> bit 0 edge)
    bias = np.where(rng.random(channels) < 0.5, -scale * crossing, rng.standard_normal(channels) * 20)
    acc = rng.integers(-50, 50, size=(6, channels)).astype(np.int32)
    acc[0] = crossing  # hit the edges
    thresholds, flip = affine_thresholds(scale, bias)
    y = scale * acc.astype(np.float64) + bias
    np.testing.assert_array_equal(threshold_pack(acc, thresholds, flip), naive.pack_bits(y))


def test_zero_scale_is_constant():
    thresholds, flip = affine_thresholds([0.0, 0.0], [-1.0, 2.0])
    acc = np.array([[-(2**31), 2**31 - 1]] * 2, dtype=np.int32).T.copy()
    np.testing.assert_array_equal(threshold_pack(acc, thresholds, flip), np.array([[1], [1]], dtype=np.uint64))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: threshold_pack(np.zeros((2, 3), np.int64), np.zeros(3, np.int64), np.zeros(3, bool)), "acc"),
        (lambda: threshold_pack(np.zeros((2, 3), np.int32), np.zeros(4, np.int64), np.zeros(3, bool)), "thresholds"),
        (lambda: threshold_pack(np.zeros((2, 3), np.int32), np.zeros(3, np.int64), np.zeros(3, np.int8)), "flip"),
        (lambda: affine_thresholds([1.0, 2.0], [0.0]), "scale"),
        (lambda: affine_thresholds([1.0, np.nan], [0.0, 0.0]), "scale"),
        (lambda: affine_thresholds([[1.0]], [[0.0]]), "scale"),
        (lambda: affine_thresholds(["a"], [0.0]), "scale"),
    ],
)
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(InputError, match=name):
        call()
