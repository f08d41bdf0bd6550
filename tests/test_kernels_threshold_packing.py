"""numbnn.kernels.threshold_packing against its naive twins: packed bits must match exactly."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from numbnn.kernels import threshold_packing as tp

channel_counts = st.one_of(st.integers(1, 140), st.sampled_from([1, 2, 8, 16, 32, 64, 65, 128]))  # odd, tails, divisors of 64


def _words(channels, groups):
    return groups * -(-(channels // groups) // 64)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 150), st.sampled_from([1, 2, 3]), channel_counts, st.integers(0, 2**32 - 1))
def test_pack_below_matches_naive(rows, groups, per_group, seed):
    """Rows past ROW_BLOCK, row counts that leave a partial word of short rows, x exactly at its threshold."""
    rng = np.random.default_rng(seed)
    channels = groups * per_group
    x = rng.standard_normal((rows, channels)).astype(np.float32)
    thresholds = (rng.standard_normal(channels) * 0.5).astype(np.float32)
    x[0] = thresholds
    x[-1, :1] = np.float32(-0.0)
    packed = np.empty((rows, _words(channels, groups)), np.uint64)
    tp.pack_below(x, thresholds, groups, packed)
    np.testing.assert_array_equal(packed, naive.pack_below(x, thresholds, groups))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 90), st.sampled_from([1, 2, 4]), channel_counts, st.integers(0, 2**32 - 1))
def test_pack_acc_below_matches_naive(rows, groups, per_group, seed):
    rng = np.random.default_rng(seed)
    channels = groups * per_group
    acc = rng.integers(-40, 40, (rows, channels)).astype(np.int32)
    thresholds = rng.integers(-45, 45, channels).astype(np.int32)
    flip = rng.random(channels) < 0.5
    packed = np.empty((rows, _words(channels, groups)), np.uint64)
    tp.pack_acc_below(acc, thresholds, flip, groups, packed)
    np.testing.assert_array_equal(packed, naive.pack_acc_below(acc, thresholds, flip, groups))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 40), st.sampled_from([1, 2]), channel_counts, st.integers(0, 2**32 - 1))
def test_gather_pack_matches_naive(batch, rows, groups, per_group, seed):
    """Any index map: elements of the image in any order, repeated, or padding constants (negative)."""
    rng = np.random.default_rng(seed)
    channels = groups * per_group
    source = int(rng.integers(1, 200))
    x = rng.standard_normal((batch, source)).astype(np.float32)
    fill = rng.standard_normal(3).astype(np.float32)
    index = rng.integers(-3, source, (rows, channels)).astype(np.int32)
    thresholds = rng.standard_normal(channels).astype(np.float32)
    packed = np.empty((batch * rows, _words(channels, groups)), np.uint64)
    tp.gather_pack(x, index.reshape(-1), fill, thresholds, groups, packed)
    np.testing.assert_array_equal(packed, naive.gather_pack(x, index, fill, thresholds, groups))
