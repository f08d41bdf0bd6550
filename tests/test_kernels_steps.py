"""numbnn.kernels.steps against its naive twin: every step program equals numpy float32 ufuncs bit for bit."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from gather_cases import gather_case
from numbnn.kernels import steps
from numbnn.kernels.threshold_packing import gather_runs

INPUT_STEPS = [steps.ADD_INPUT, steps.SUB_INPUT, steps.RSUB_INPUT, steps.MUL_INPUT, steps.ADD_PADDED_INPUT]


def program(draw_codes, rng, channels):
    codes = np.array(draw_codes, np.int64)
    rows = [naive.STEP_ROWS.get(naive.STEP_CODES[c], 0) for c in codes]
    first_rows = np.cumsum([0] + rows[:-1]).astype(np.int64)
    return codes, first_rows, rng.standard_normal((sum(rows), channels)).astype(np.float32)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 17), min_size=0, max_size=5), st.integers(1, 150), st.one_of(st.integers(1, 70), st.just(64)),
       st.sampled_from(["same", "per_image", "repeated"]), st.booleans(), st.integers(0, 2**32 - 1))
def test_run_stages_matches_naive_bit_for_bit(codes, rows, channels, other_kind, block_program, seed):
    """Rows past ROW_BLOCK; ``block_program`` forces ReActNet's [mul, affine, add_input, dprelu]."""
    rng = np.random.default_rng(seed)
    if block_program:
        codes = [steps.MUL, steps.AFFINE, steps.ADD_INPUT, steps.DPRELU]
    codes, first_rows, params = program(codes, rng, channels)
    x = rng.standard_normal((rows, channels)).astype(np.float32)
    x[0] = 0.0
    width = channels // 2 if other_kind == "repeated" and channels % 2 == 0 else channels
    other_rows = 1 if other_kind == "per_image" else rows
    other = rng.standard_normal((other_rows, width)).astype(np.float32)
    out = np.empty_like(x)
    steps.run_stages(x, codes, first_rows, params, other, rows // other_rows, out)
    expected = naive.run_steps(codes, first_rows, params, x, other, rows // other_rows)
    np.testing.assert_array_equal(out.view(np.int32), expected.view(np.int32))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=1, max_size=3), st.integers(1, 3), st.integers(1, 90),
       st.one_of(st.integers(1, 40), st.sampled_from([16, 32, 64])), st.booleans(),
       st.sampled_from(["none", "same", "per_image"]), st.sampled_from([1, 2, 4, 8]), st.integers(0, 2**32 - 1))
def test_run_stages_gathered_matches_naive(codes, batch, rows, channels, in_runs, residual, widen, seed):
    """Any index map read element by element, or maps made of runs of one source pixel's consecutive
    channels and runs of padding (depth-to-space's shape), read run by run; rows past ROW_BLOCK. With the
    parameters repeated ``widen`` times (where a block of ROW_BLOCK rows is whole wide rows) blocks are
    stepped as wide rows, except where a second input one row per image is read (then row by row)."""
    rng = np.random.default_rng(seed)
    if residual != "none":
        codes = [*codes, steps.ADD_INPUT]
    codes, first_rows, params = program(codes, rng, channels)
    x, fill, index, built, source_channels = gather_case(rng, batch, rows, channels, in_runs, 12)
    run, _ = gather_runs(index.reshape(-1), channels, source_channels)
    assert run >= built  # the runs the map was built from qualify, so the longest is no shorter
    total = batch * rows
    other_rows = {"none": 1, "same": total, "per_image": batch}[residual]
    other = rng.standard_normal((other_rows, channels if residual != "none" else 1)).astype(np.float32)
    div = total // other_rows if residual != "none" else total
    wide_params = params if (steps.ROW_BLOCK * channels) % (widen * channels) else np.tile(params, (1, widen))
    out = np.empty((total, channels), np.float32)
    steps.run_stages_gathered(x, index.reshape(-1), run, fill, codes, first_rows, params, np.ascontiguousarray(wide_params),
                              other, div, out)
    values = np.where(index >= 0, x[:, np.maximum(index, 0)], fill[np.maximum(-1 - index, 0)]).reshape(-1, channels)
    expected = naive.run_steps(codes, first_rows, params, values, other, div)
    np.testing.assert_array_equal(out.view(np.int32), expected.view(np.int32))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 150), st.integers(1, 70), st.data(), st.booleans(), st.integers(0, 2**32 - 1))
def test_zero_padded_residual_matches_naive(rows, channels, data, per_image, seed):
    """add_padded_input: the second input's channels added, +0.0 past them (-0.0 becomes +0.0 there, as
    adding the padded copy would make it), any width up to C."""
    rng = np.random.default_rng(seed)
    width = data.draw(st.integers(1, channels))
    codes, first_rows, params = program([steps.DPRELU, steps.AFFINE, steps.ADD_PADDED_INPUT], rng, channels)
    x = rng.standard_normal((rows, channels)).astype(np.float32)
    params[4, -1], params[5, -1] = 0.0, -0.0  # the last channel's affine gives y * 0.0 + -0.0 = -0.0 for y < 0
    params[:4, -1] = (0.0, 1.0, 1.0, 0.0)  # and its DPReLU passes x through
    x[:, -1] = -1.0
    other_rows = 1 if per_image else rows
    other = rng.standard_normal((other_rows, width)).astype(np.float32)
    out = np.empty_like(x)
    steps.run_stages(x, codes, first_rows, params, other, rows // other_rows, out)
    expected = naive.run_steps(codes, first_rows, params, x, other, rows // other_rows)
    np.testing.assert_array_equal(out.view(np.int32), expected.view(np.int32))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 150), st.integers(1, 40), st.integers(2, 7), st.booleans(), st.integers(0, 2**32 - 1))
def test_residual_of_channel_means_matches_naive(rows, channels, k, per_image, seed):
    """add_mean_input: each channel c adds the float32 mean of the second input's channels k*c .. k*c + k-1
    (numpy's order for a short last axis), per row or one row per image."""
    rng = np.random.default_rng(seed)
    codes, first_rows, params = program([steps.ADD_MEAN_INPUT, steps.AFFINE, steps.DPRELU], rng, channels)
    x = rng.standard_normal((rows, channels)).astype(np.float32)
    other_rows = 1 if per_image else rows
    other = rng.standard_normal((other_rows, k * channels)).astype(np.float32)
    x[0, 0], other[0, :k] = -0.0, -0.0  # -0.0 + mean(-0.0s): +0.0 as numpy's mean starts from +0.0,
    params[:, 0] = (1.0, 0.0, 0.0, 1.0, 1.0, 0.0)  # kept to the end by channel 0's identity affine and DPReLU
    out = np.empty_like(x)
    steps.run_stages(x, codes, first_rows, params, other, rows // other_rows, out)
    expected = naive.run_steps(codes, first_rows, params, x, other, rows // other_rows)
    np.testing.assert_array_equal(out.view(np.int32), expected.view(np.int32))


@settings(max_examples=80, deadline=None)
@given(st.booleans(), st.sampled_from([16, 32, 48, 64, 128]), st.booleans(), st.integers(1, 64), st.integers(0, 40),
       st.booleans(), st.booleans(), st.booleans(), st.integers(0, 2**32 - 1))
def test_one_pass_epilogues_match_naive_bit_for_bit(unit, channels, repeated, rows, first, per_image, pack, scratch,
                                                    seed):
    """ReActNet's block and FTBNN's unit epilogue on int32 accumulators (the block's by 16-lane columns,
    block_epilogue_columns, when the channels and the residual's width are whole vectors and each row has its
    own residual row: a residual of half the channels repeated too; else row by row, ``per_image``: one residual
    row for all); RPReLU's input exactly at its kink in the first row, and rows past the block left untouched.
    The block's column path also packs the signs (``pack``: thresholds, one exactly at the first output) when
    asked, in the words pack_below writes, tail bits 0; the row path leaves packing to its caller. ``scratch``:
    the output rows in a block of their own (row0 = first), as the driver writes a map it does not keep."""
    rng = np.random.default_rng(seed)
    width = channels // 2 if repeated and channels % 32 == 0 else channels
    acc = rng.integers(-100, 100, (rows, channels + 16)).astype(np.int32)  # a wider tile buffer, as the driver's
    if unit:
        codes, first_rows, epilogue = [steps.AFFINE, steps.DPRELU, steps.ADD_INPUT], [0, 2, 6], steps.unit_epilogue
    else:
        codes, first_rows, epilogue = [steps.MUL, steps.AFFINE, steps.ADD_INPUT, steps.DPRELU], [0, 1, 3, 3], steps.block_epilogue
    codes, first_rows = np.array(codes, np.int64), np.array(first_rows, np.int64)
    kink = 2 if unit else 3  # DPReLU's rows: shift_x, pos, neg, shift_y
    params = rng.standard_normal((6 if unit else 7, channels)).astype(np.float32)
    total = first + rows + 5
    other = rng.standard_normal((1 if per_image else total, width)).astype(np.float32)
    div = total if per_image else 1
    values = acc[:, :channels].astype(np.float32)
    residual = other[np.arange(first, first + rows) // div]
    before = list(codes).index(steps.DPRELU)
    before_kink = naive.run_steps(codes[:before], first_rows[:before], params, values[:1], residual[:1], 1)
    params[kink, 0] = before_kink[0, 0]  # u = 0 at row 0, channel 0: pos < 0 < neg tells -0.0 from +0.0
    params[kink + 1, 0], params[kink + 2, 0], params[kink + 3, 0] = -0.5, 0.25, 0.0
    row0 = first if scratch else 0
    out = np.full((total - row0, channels), np.nan, np.float32)
    words = -(-channels // 64) if pack else 0
    packed = np.full((total, words), 0xDEADBEEF, np.uint64)
    thresholds = rng.standard_normal(channels).astype(np.float32)
    if unit:
        epilogue(acc, first, first + rows, params, first_rows, other, div, out, row0)
    else:
        columns = channels % 16 == 0 and width % 16 == 0 and div == 1
        expected_rows = naive.run_steps(codes, first_rows, params, values, residual, 1)
        thresholds[1] = expected_rows[0, 1]  # y == t: not below, bit 0
        packed_here = epilogue(acc, first, first + rows, params, first_rows, other, div, out, row0, thresholds, 1, 1,
                               packed)
        assert packed_here == (pack and columns)
        if packed_here:
            np.testing.assert_array_equal(packed[first:first + rows], naive.pack_below(expected_rows, thresholds, 1))
        assert (packed[:first] == 0xDEADBEEF).all() and (packed[first + rows:] == 0xDEADBEEF).all()
        assert packed_here or (packed == 0xDEADBEEF).all()
    expected = naive.run_steps(codes, first_rows, params, values, residual, 1)
    np.testing.assert_array_equal(out[first - row0:first - row0 + rows].view(np.int32), expected.view(np.int32))
    assert np.isnan(out[:first - row0]).all() and np.isnan(out[first - row0 + rows:]).all()
