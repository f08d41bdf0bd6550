"""numbnn.kernels.threshold_packing against its naive twins: packed bits must match exactly."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from gather_cases import gather_case
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
    tp.pack_below(x, thresholds, groups, tp.NO_SHUFFLE, packed)
    np.testing.assert_array_equal(packed, naive.pack_below(x, thresholds, groups))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 150), st.sampled_from([1, 2, 4]), st.sampled_from([2, 3, 4, 8]), st.integers(1, 40),
       st.integers(0, 2**32 - 1))
def test_pack_below_after_a_channel_shuffle_matches_naive(rows, groups, shuffle, per_shuffle_group, seed):
    """``shuffle`` G: the signs of ShuffleNet's channel shuffle of each row in G groups (FTBNN's), any packing groups."""
    rng = np.random.default_rng(seed)
    channels = shuffle * per_shuffle_group
    if channels % groups:
        return
    x = rng.standard_normal((rows, channels)).astype(np.float32)
    thresholds = (rng.standard_normal(channels) * 0.5).astype(np.float32)
    packed = np.empty((rows, _words(channels, groups)), np.uint64)
    tp.pack_below(x, thresholds, groups, shuffle, packed)
    np.testing.assert_array_equal(packed, naive.pack_below(naive.shuffle_columns(x, shuffle), thresholds, groups))


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
@given(st.integers(1, 3), st.integers(1, 40), st.sampled_from([1, 2]), channel_counts, st.booleans(), st.integers(0, 2**32 - 1))
def test_gather_pack_matches_naive(batch, rows, groups, per_group, in_runs, seed):
    """Any index map: elements of the image in any order, repeated, or padding constants (negative),
    with or without a shift of their source channel; or maps made of runs of consecutive elements of
    one source pixel and runs of padding (space-to-depth's shape), read run by run."""
    rng = np.random.default_rng(seed)
    channels = groups * per_group
    x, fill, index, built, source_channels = gather_case(rng, batch, rows, channels, in_runs, 30)
    thresholds = rng.standard_normal(channels).astype(np.float32)
    shift = rng.standard_normal(source_channels if rng.integers(0, 2) else 0).astype(np.float32)
    run, first_channel = tp.gather_runs(index.reshape(-1), channels, source_channels)
    assert run >= built  # the runs the map was built from qualify, so the longest is no shorter
    packed = np.empty((batch * rows, _words(channels, groups)), np.uint64)
    tp.gather_pack(x, index.reshape(-1), run, first_channel, shift, fill, thresholds, groups, packed)
    np.testing.assert_array_equal(packed, naive.gather_pack(x, index, shift, fill, thresholds, groups))


def test_gather_runs_finds_whole_pixels_and_single_channels():
    """Space-to-depth (2x2 cells of 3 channels into 12) moves whole pixels: runs of 3; a channel shuffle
    moves single channels; a row that starts inside a pixel's channels cannot use a longer run."""
    cells = (np.arange(4 * 4 * 3).reshape(2, 2, 2, 2, 3).transpose(0, 2, 1, 3, 4).reshape(-1)).astype(np.int32)
    run, first = tp.gather_runs(cells, 12, 3)
    assert run == 3 and (first == 0).all()
    shuffled = np.arange(6 * 4).reshape(6, 2, 2).transpose(0, 2, 1).reshape(-1).astype(np.int32)
    assert tp.gather_runs(shuffled, 4, 4)[0] == 1
    shifted = np.arange(1, 9, dtype=np.int32)  # rows of 4 starting at channel 1 of 4-channel pixels
    assert tp.gather_runs(shifted, 4, 4)[0] == 1
