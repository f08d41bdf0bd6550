"""numbnn.kernels.binary_conv_driver (and its padding table) against the naive twins, every transform.

INT32 must equal the naive +1/-1 convolution exactly; STEPS must equal the naive float32 steps on those
integers bit for bit, and its packed bits the naive packing of that float output.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from numbnn.kernels import binary_conv_driver as driver
from numbnn.kernels import steps
from numbnn.kernels.padding import border_corrections, tap_weight_sums
from numbnn.kernels.pooling import avg_pool2d
from numbnn.kernels.tiles import TILE_COLS

NO_POOL = np.zeros((0, 1), np.float32)


convolutions = dict(
    batch=st.sampled_from([1, 2, 3]),
    size=st.integers(1, 9),
    groups=st.sampled_from([1, 2, 3]),  # 2 and 3: a group's partial last panel spills into the next group's columns
    per_group=st.one_of(st.integers(1, 70), st.sampled_from([2, 4, 8, 16, 32, 64, 65, 129])),  # odd, tails, dense
    outputs=st.integers(1, 40),
    geometry=st.sampled_from([(1, 0, 1, 1), (3, 1, 1, 1), (3, 1, 2, 1), (2, 0, 2, 1), (3, 2, 1, 2), (1, 0, 2, 1)]),
    pad_value=st.sampled_from([0, 1, -1]),
    seed=st.integers(0, 2**32 - 1),
)


def setup(batch, size, groups, per_group, outputs, geometry, pad_value, seed):
    """Packed x and w, the driver's arguments, and the naive int32 result [N*Ho*Wo, O]."""
    rng = np.random.default_rng(seed)
    kernel, padding, stride, dilation = geometry
    size = max(size, dilation * (kernel - 1) + 1 - 2 * padding)
    channels, out_channels = groups * per_group, groups * outputs
    x = naive.pack_bits(rng.standard_normal((batch, size, size + 1, groups, per_group))).reshape(batch, size, size + 1, -1)
    w = naive.pack_bits(rng.standard_normal((out_channels, kernel, kernel, per_group)))
    expected = naive.binary_conv2d(x, w, channels, stride, padding, dilation, pad_value, groups)
    ho, wo = expected.shape[1:3]
    shape = (kernel, kernel, stride, stride, padding, padding, dilation, dilation, ho, wo)
    wsum = tap_weight_sums(w, per_group)
    border_row, correction = border_corrections(size, size + 1, *shape, wsum, pad_value)
    tap_bits, panels, k = driver.weight_panels(w, per_group, groups)
    args = (np.ascontiguousarray(x), shape, tap_bits, panels, k, border_row, correction)
    return rng, args, expected.reshape(-1, out_channels).astype(np.int32)


@settings(max_examples=60, deadline=None)
@given(**convolutions)
def test_int32_transform_matches_naive(batch, size, groups, per_group, outputs, geometry, pad_value, seed):
    _, args, expected = setup(batch, size, groups, per_group, outputs, geometry, pad_value, seed)
    acc = np.empty_like(expected)
    driver.binary_conv_int32(*args, acc)
    np.testing.assert_array_equal(acc, expected)


@settings(max_examples=30, deadline=None)
@given(batch=st.sampled_from([1, 2]), size=st.integers(1, 9), groups=st.sampled_from([1, 2, 4]),
       outputs=st.integers(1, 40), geometry=st.sampled_from([(3, 1, 1, 1), (3, 1, 2, 1), (3, 2, 1, 2), (3, 0, 2, 1)]),
       pad_value=convolutions["pad_value"], seed=convolutions["seed"])
def test_int32_3x3_pairs_of_taps_match_naive(batch, size, groups, outputs, geometry, pad_value, seed):
    """3x3 kernels of 32 channels per group take their own gather (two taps per word, offsets in registers,
    from x with zero words around it); strides, dilation and no padding included."""
    _, args, expected = setup(batch, size, groups, 32, outputs, geometry, pad_value, seed)
    acc = np.empty_like(expected)
    driver.binary_conv_int32(*args, acc)
    np.testing.assert_array_equal(acc, expected)


@settings(max_examples=30, deadline=None)
@given(panels=st.integers(1, 3), geometry=convolutions["geometry"], pad_value=convolutions["pad_value"],
       per_group=st.sampled_from([3, 16, 64, 100]), groups=st.sampled_from([1, 2, 4]), batch=st.integers(1, 3),
       seed=convolutions["seed"])
def test_int32_in_place_tiles_match_naive(panels, geometry, pad_value, per_group, groups, batch, seed):
    """Whole column panels in every group (O/groups a multiple of TILE_COLS): full pixel blocks' tiles
    are written straight into the output and only the last, partial block goes through the scratch tiles.
    A 9 x 10 input, 1-3 images: up to four full blocks of CONV_BLOCK pixels, and a partial one."""
    _, args, expected = setup(batch, 9, groups, per_group, panels * TILE_COLS, geometry, pad_value, seed)
    acc = np.full_like(expected, -12345)
    driver.binary_conv_int32(*args, acc)
    np.testing.assert_array_equal(acc, expected)


PROGRAMS = {  # codes, first rows, parameter rows: the two one-pass epilogues and a program of passes
    "block": ([steps.MUL, steps.AFFINE, steps.ADD_INPUT, steps.DPRELU], [0, 1, 3, 3], 7),
    "unit": ([steps.AFFINE, steps.DPRELU, steps.ADD_INPUT], [0, 2, 6], 6),
    "passes": ([steps.AFFINE, steps.RELU, steps.MUL_INPUT], [0, 2, 2], 2),
}


@settings(max_examples=60, deadline=None)
@given(**convolutions, program=st.sampled_from(sorted(PROGRAMS)), pack_groups=st.sampled_from([0, 1, 2]),
       shuffle=st.integers(0, 3))
def test_steps_transform_matches_naive(batch, size, groups, per_group, outputs, geometry, pad_value, seed, program,
                                       pack_groups, shuffle):
    """Each program's output bit for bit; its signs packed, after a channel shuffle in one of the divisors of
    the channel count (``shuffle`` picks which; the first is 1, no shuffle)."""
    rng, args, expected = setup(batch, size, groups, per_group, outputs, geometry, pad_value, seed)
    rows, out_channels = expected.shape
    codes, first_rows, n_params = PROGRAMS[program]
    codes, first_rows = np.array(codes, np.int64), np.array(first_rows, np.int64)
    params = rng.standard_normal((n_params, out_channels)).astype(np.float32)
    other = rng.standard_normal((rows, out_channels)).astype(np.float32)
    pack_groups = pack_groups if pack_groups and out_channels % pack_groups == 0 else 0
    thresholds = rng.standard_normal(out_channels).astype(np.float32)
    words = pack_groups * -(-(out_channels // max(pack_groups, 1)) // 64)
    packed = np.empty((rows, words), np.uint64)
    out = np.empty((rows, out_channels), np.float32)
    divisors = [d for d in range(1, out_channels + 1) if out_channels % d == 0]
    shuffle_groups = divisors[min(shuffle, len(divisors) - 1)]
    driver.binary_conv(*args, driver.STEPS, np.empty((0, 0), np.int32), codes, first_rows, params, other, 1, out,
                       thresholds, shuffle_groups, max(pack_groups, 1), packed, NO_POOL, *driver.NO_MOVES)
    want = naive.run_steps(codes, first_rows, params, expected, other, 1)
    np.testing.assert_array_equal(out.view(np.int32), want.view(np.int32))
    if pack_groups:  # the signs of the channel-shuffled output
        np.testing.assert_array_equal(packed, naive.pack_below(naive.shuffle_columns(want, shuffle_groups), thresholds,
                                                               pack_groups))


@settings(max_examples=40, deadline=None)
@given(**{**convolutions, "size": st.one_of(st.integers(1, 9), st.sampled_from([20, 31]))}, block=st.booleans(),
       pack=st.booleans(), keep=st.booleans())
def test_steps_transform_pools_like_the_float_model(batch, size, groups, per_group, outputs, geometry, pad_value, seed,
                                                    block, pack, keep):
    """The 2x2 average pool written beside the output (blocks of whole row pairs: several per block on small
    maps, one on rows of 21 and 32 pixels; odd sizes leave one-row and one-column windows) equals the float
    model's pooling kernel on that output bit for bit, and the output and its packed signs are unchanged;
    the same pool and signs when the output is not kept (``keep`` False: an output of no rows)."""
    rng, args, expected = setup(batch, size, groups, per_group, outputs, geometry, pad_value, seed)
    rows, out_channels = expected.shape
    ho, wo = args[1][8], args[1][9]
    if 2 * wo > driver.CONV_BLOCK:  # a block holds at least one row pair (the caller's check)
        return
    codes, first_rows, n_params = PROGRAMS["block" if block else "passes"]
    codes, first_rows = np.array(codes, np.int64), np.array(first_rows, np.int64)
    params = rng.standard_normal((n_params, out_channels)).astype(np.float32)
    other = rng.standard_normal((rows, out_channels)).astype(np.float32)
    thresholds = rng.standard_normal(out_channels).astype(np.float32)
    packed = np.empty((rows, -(-out_channels // 64) if pack else 0), np.uint64)
    out = np.empty((rows if keep else 0, out_channels), np.float32)
    hp, wp = -(-ho // 2), -(-wo // 2)
    pooled = np.full((batch * hp * wp, out_channels), np.nan, np.float32)
    driver.binary_conv(*args, driver.STEPS, np.empty((0, 0), np.int32), codes, first_rows, params, other, 1, out,
                       thresholds, 1, 1, packed, pooled, *driver.NO_MOVES)
    want = naive.run_steps(codes, first_rows, params, expected, other, 1)
    if keep:
        np.testing.assert_array_equal(out.view(np.int32), want.view(np.int32))
    if pack:
        np.testing.assert_array_equal(packed, naive.pack_below(want, thresholds, 1))
    maps = want.reshape(batch, ho, wo, out_channels)
    np.testing.assert_array_equal(pooled.reshape(batch, hp, wp, -1).view(np.int32),
                                  avg_pool2d(maps, (2, 2), (2, 2), (0, 0), (hp, wp)).view(np.int32))
    np.testing.assert_allclose(pooled.reshape(batch, hp, wp, -1), naive.avg_pool2d(maps, (2, 2), (2, 2), (0, 0), (hp, wp)),
                               rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(**{**convolutions, "outputs": st.sampled_from([8, 16, 32, 40])})
def test_shrink_epilogue_matches_naive(batch, size, groups, per_group, outputs, geometry, pad_value, seed):
    """PokeBNN's shrinking unit [affine, add_mean_input, dprelu], a residual of twice the channels averaged in
    pairs: one vectorised pass on whole 16-lane vectors (else the passes), bit for bit the naive steps; a pair
    of -0.0 gives +0.0 (the mean starts from +0.0), kept to the end by the channel's identity steps."""
    rng, args, expected = setup(batch, size, groups, per_group, outputs, geometry, pad_value, seed)
    rows, out_channels = expected.shape
    codes = np.array([steps.AFFINE, steps.ADD_MEAN_INPUT, steps.DPRELU], np.int64)
    first_rows = np.array([0, 2, 2], np.int64)
    params = rng.standard_normal((6, out_channels)).astype(np.float32)
    other = rng.standard_normal((rows, 2 * out_channels)).astype(np.float32)
    # channel 0 of row 0: v = acc * (+-0.0) + -0.0 = -0.0, plus the mean of (-0.0, -0.0), which is +0.0 only
    # because the mean starts from +0.0; then the identity DPReLU keeps the sign of the zero
    params[:, 0] = (-0.0 if expected[0, 0] >= 0 else 0.0, -0.0, 0.0, 1.0, 1.0, 0.0)
    other[0, :2] = -0.0
    out = np.empty((rows, out_channels), np.float32)
    driver.binary_conv(*args, driver.STEPS, np.empty((0, 0), np.int32), codes, first_rows, params, other, 1, out,
                       np.zeros(0, np.float32), 1, 1, np.empty((rows, 0), np.uint64), NO_POOL, *driver.NO_MOVES)
    want = naive.run_steps(codes, first_rows, params, expected, other, 1)
    np.testing.assert_array_equal(out.view(np.int32), want.view(np.int32))


MOVED_UNIT = ([steps.MUL, steps.ADD, steps.AFFINE, steps.ADD_INPUT, steps.DPRELU], [0, 1, 2, 4, 4], 8)  # RB-Net's unit


def _moved_case(batch, size, groups, per_group, outputs, geometry, pad_value, seed, runs, drop, program):
    """Run the driver with ``moved`` (see the test below), check its output against the naive steps and return
    the case for more checks."""
    rng, args, expected = setup(batch, size, groups, per_group, outputs * runs, geometry, pad_value, seed)
    rows, out_channels = expected.shape
    pixels, width = rows // batch, out_channels // runs
    kept = np.ones(pixels * runs, bool)
    if drop:
        kept[::drop + 1] = False
    dest_pixels = int(kept.sum())
    moved = np.full(pixels * runs, -1, np.int64)
    moved[kept] = rng.permutation(dest_pixels)
    codes, first_rows, n_params = MOVED_UNIT if program == "moved_unit" else PROGRAMS[program]
    codes, first_rows = np.array(codes, np.int64), np.array(first_rows, np.int64)
    params = rng.standard_normal((n_params, out_channels)).astype(np.float32)
    if program == "moved_unit":  # batch norm and RPReLU: one value per destination channel, repeated per run
        params[2:] = np.tile(params[2:, :width], (1, runs))
    other = rng.standard_normal((batch * dest_pixels, width)).astype(np.float32)
    out = np.full((batch * dest_pixels, width), np.nan, np.float32)
    driver.binary_conv(*args, driver.STEPS, np.empty((0, 0), np.int32), codes, first_rows, params, other, 1, out,
                       np.zeros(0, np.float32), 1, 1, np.empty((rows, 0), np.uint64), NO_POOL, moved, dest_pixels,
                       *driver.NO_MOVES[2:])
    runs_at = np.flatnonzero(kept)  # source run numbers within an image, in destination order
    order = np.argsort(moved[kept])
    source = (np.arange(batch)[:, None] * pixels * runs + runs_at[order]).reshape(-1)  # run numbers, destination order
    other_runs = np.zeros((rows * runs, width), np.float32)
    other_runs[source] = other  # the second input where each run sits before the move
    want = naive.run_steps(codes, first_rows, params, expected, other_runs.reshape(rows, out_channels), 1)
    np.testing.assert_array_equal(out.view(np.int32), want.reshape(-1, width)[source].view(np.int32))
    return rng, args, codes, first_rows, params, other, moved, dest_pixels, out


@settings(max_examples=60, deadline=None)
@given(**convolutions, runs=st.sampled_from([1, 2, 4]), drop=st.integers(0, 3),
       program=st.sampled_from(sorted(PROGRAMS) + ["moved_unit"]))
def test_steps_transform_moves_rows_like_the_naive_steps(batch, size, groups, per_group, outputs, geometry, pad_value,
                                                          seed, runs, drop, program):
    """``moved``: each output row cut into ``runs`` runs of C' channels that land on other rows of the
    destination in a random order, every ``drop``-th run dropped (a crop); the program reads the second input
    at each run's destination. Equals the naive steps on the naive conv's runs moved so, bit for bit. RB-Net's
    program (``moved_unit``, one pass) has the same parameters after the move for every run, as the op gives them."""
    _moved_case(batch, size, groups, per_group, outputs, geometry, pad_value, seed, runs, drop, program)


@settings(max_examples=40, deadline=None)
@given(**{**convolutions, "outputs": st.sampled_from([16, 32, 48])}, runs=st.sampled_from([1, 2, 4]),
       drop=st.integers(0, 3), padding=st.integers(0, 2))
def test_moved_unit_packs_the_moved_map_like_gather_pack(batch, size, groups, per_group, outputs, geometry, pad_value,
                                                          seed, runs, drop, padding):
    """RB-Net's unit with ``moved_packing``: each 16-channel group of the moved map lands on a random uint16 quarter
    of the packed rows (``padding`` quarters of each row are nobody's and keep what was there), bit = (y + shift)
    - threshold < 0 as gather_pack computes it; the float output is the same as without packing."""
    rng, args, codes, first_rows, params, other, moved, dest_pixels, want = _moved_case(
        batch, size, groups, per_group, outputs, geometry, pad_value, seed, runs, drop, "moved_unit")
    width = want.shape[1]  # C' = groups * outputs
    per_pixel = width // 16
    words = -(-(width + 16 * padding) // 64)
    slots = dest_pixels * 4 * words  # uint16 quarters of an image's packed rows (one row per destination pixel)
    free = np.array([q for q in range(slots) if q % (4 * words) < per_pixel + padding], np.int64)
    slot = rng.permutation(free)[:dest_pixels * per_pixel]
    packing = np.stack([slot, rng.integers(0, 5, slot.size) * 16], axis=1).reshape(-1)  # quarter, first threshold
    thresholds = rng.standard_normal(16 * 5).astype(np.float32)
    shifts = rng.standard_normal(width).astype(np.float32)
    template = rng.integers(0, 2**63, (batch * dest_pixels, words), dtype=np.uint64)
    packed = template.copy()
    out = np.empty_like(want)
    driver.binary_conv(*args, driver.STEPS, np.empty((0, 0), np.int32), codes, first_rows, params, other, 1, out,
                       thresholds, 1, 1, packed, NO_POOL, moved, dest_pixels, packing, shifts)
    np.testing.assert_array_equal(out.view(np.int32), want.view(np.int32))
    expect = template.view(np.uint16).reshape(batch, -1).copy()
    groups16 = (want.reshape(batch, dest_pixels, per_pixel, 16) + shifts.reshape(per_pixel, 16)).reshape(batch, -1, 16)
    for g, (quarter, limit) in enumerate(packing.reshape(-1, 2)):
        below = (groups16[:, g] - thresholds[limit:limit + 16]) < 0
        expect[:, quarter] = (below * (1 << np.arange(16))).sum(axis=1)
    np.testing.assert_array_equal(packed.view(np.uint16).reshape(batch, -1), expect)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2), st.sampled_from([1, 2]),
       st.sampled_from([0, 1, -1]), st.integers(0, 2**32 - 1))
def test_border_corrections_match_naive(h, w, kh, kw, padding, stride, pad_value, seed):
    if h + 2 * padding < kh or w + 2 * padding < kw:
        return
    ho, wo = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    wsum = np.random.default_rng(seed).integers(-9, 10, (5, kh * kw)).astype(np.int64)
    shape = (kh, kw, stride, stride, padding, padding, 1, 1, ho, wo)
    border_row, correction = border_corrections(h, w, *shape, wsum, pad_value)
    table = np.where(border_row[:, None] >= 0, correction[np.maximum(border_row, 0)], 0)
    np.testing.assert_array_equal(table, naive.border_corrections(h, w, *shape, wsum, pad_value))
    if pad_value == 1:  # one-padding needs no correction
        assert (border_row < 0).all()
