"""Per-channel float32 steps applied row by row: the output transform that turns a layer's int32 or
float32 result into the next float activation without a memory pass per step.

A program is a list of step codes; step s reads its per-channel parameters from rows
params[first_rows[s]:] (one value per channel c) and, for the *_INPUT steps, a second input ``other``
[R, Co] whose row r // other_div, channel c % Co meets row r, channel c (a residual of the same shape,
a residual with repeated channels, or one gate per image). Each step is one float32 operation per
element in the float model's order, so a program equals the float model's layers bit for bit::

    MUL      y = y * a          AFFINE   y = y * a + b (eval batch norm)     RELU  y = y * (y > 0)
    ADD/SUB  y = y + a, y - a   RSUB     y = a - y                          NEG   y = -y
    DIV      y = y / a          RDIV     y = a / y (IEEE: x / 0 is inf)      SIGN  y = -1 if y < 0 else 1
    DPRELU   u = y - a; y = (b if u >= 0 else c) * u - d   (RPReLU: b = 1)
    HARD_SIGMOID  y = min(max(y + 3, 0), 6) / 6     FAKE_QUANT  y = rint(min(max(y, lo), hi) / s) * s
    *_INPUT  y = y + o, y - o, o - y, y * o with o the second input
    ADD_PADDED_INPUT  y = y + o over the second input's Co channels, y + 0.0 past them (a residual
                      zero-padded along channels, as PokeBNN's growing blocks pad it: no padded copy)
    ADD_MEAN_INPUT    y = y + the mean of o's channels k*c .. k*c + k-1, o having k*C channels (2 <= k <= 7),
                      in :func:`numbnn.kernels.pooling.mean`'s order for a short last axis: a residual that
                      averages channel groups (PokeBNN's channel shrink), read without its own pass

Rows go in blocks of ROW_BLOCK that stay in L1 while every step sweeps them. The entry points have
explicit signatures (C-contiguous float32 rows, int64 programs) and no bounds checks: their callers
(:mod:`numbnn.inference.ops`) check every shape.
"""

import numba as nb
import numpy as np

from numbnn.kernels.intrinsics import LANES, block_epilogue_columns, moved_unit_lanes, shrink_unit_lanes
from numbnn.kernels.typed import typed_njit

ROW_BLOCK = 64  # rows per parallel task: amortises the task's scratch buffer and step dispatch

# Step codes (the names are in numbnn.inference.ops.STAGES).
MUL, ADD, SUB, RSUB, DIV, RDIV, AFFINE, DPRELU, RELU, HARD_SIGMOID, FAKE_QUANT, SIGN, NEG = range(13)
ADD_INPUT, SUB_INPUT, RSUB_INPUT, MUL_INPUT, ADD_PADDED_INPUT, ADD_MEAN_INPUT = range(13, 19)

# Numba types of the entry points' arguments: C-contiguous float32 rows, and a program (codes, first rows).
ROWS = "float32[:, ::1]"
PROGRAM = "int64[::1], int64[::1]"
NO_OTHER = np.zeros((1, 1), np.float32)  # the second input of steps that read none


@nb.njit(cache=True, error_model="numpy")  # IEEE division: x / 0 is inf, as in numpy
def apply_steps(out, row0, first, last, codes, first_rows, params, other, other_div):
    """The steps applied in place to rows first .. last-1 of float32 ``out`` (see :func:`run_stages`), row r
    held in out[r - row0] (0 for a whole map; ``first`` for a block's own scratch rows). ``other`` is
    indexed by r either way.

    The *_INPUT steps loop over a view of each repeat (``part``, index c from 0): indexing ``out[r,
    base + c]``, which Numba's negative-index wraparound cannot prove non-negative, kept them scalar
    (2x slower steps on reactnet-a's blocks).
    """
    channels = out.shape[1]
    width = other.shape[1]
    for s in range(codes.size):
        code, p = codes[s], first_rows[s]
        if code == MUL:
            for r in range(first, last):
                for c in range(channels):
                    out[r - row0, c] = out[r - row0, c] * params[p, c]
        elif code == ADD:
            for r in range(first, last):
                for c in range(channels):
                    out[r - row0, c] = out[r - row0, c] + params[p, c]
        elif code == SUB:
            for r in range(first, last):
                for c in range(channels):
                    out[r - row0, c] = out[r - row0, c] - params[p, c]
        elif code == RSUB:
            for r in range(first, last):
                for c in range(channels):
                    out[r - row0, c] = params[p, c] - out[r - row0, c]
        elif code == DIV:
            for r in range(first, last):
                for c in range(channels):
                    out[r - row0, c] = out[r - row0, c] / params[p, c]
        elif code == RDIV:
            for r in range(first, last):
                for c in range(channels):
                    out[r - row0, c] = params[p, c] / out[r - row0, c]
        elif code == AFFINE:
            for r in range(first, last):
                for c in range(channels):
                    out[r - row0, c] = out[r - row0, c] * params[p, c] + params[p + 1, c]
        elif code == DPRELU:  # u = y - shift_x; (pos if u >= 0 else neg) * u - shift_y
            for r in range(first, last):
                for c in range(channels):
                    u = out[r - row0, c] - params[p, c]
                    pos, neg = params[p + 1, c], params[p + 2, c]  # both loaded: a select, not a branch
                    out[r - row0, c] = (pos if u >= 0 else neg) * u - params[p + 3, c]
        elif code == RELU:
            for r in range(first, last):
                for c in range(channels):
                    out[r - row0, c] = out[r - row0, c] * np.float32(out[r - row0, c] > 0)
        elif code == HARD_SIGMOID:
            for r in range(first, last):
                for c in range(channels):
                    v = min(max(out[r - row0, c] + np.float32(3.0), np.float32(0.0)), np.float32(6.0))
                    out[r - row0, c] = v / np.float32(6.0)
        elif code == FAKE_QUANT:  # lo, hi, step
            for r in range(first, last):
                for c in range(channels):
                    v = min(max(out[r - row0, c], params[p, c]), params[p + 1, c])
                    out[r - row0, c] = np.rint(v / params[p + 2, c]) * params[p + 2, c]
        elif code == SIGN:
            for r in range(first, last):
                for c in range(channels):
                    out[r - row0, c] = np.float32(-1.0) if out[r - row0, c] < 0 else np.float32(1.0)
        elif code == NEG:
            for r in range(first, last):
                for c in range(channels):
                    out[r - row0, c] = -out[r - row0, c]
        elif code == ADD_INPUT:  # the second input, its channels repeated to fill ours
            for r in range(first, last):
                row = other[r // other_div]
                for base in range(0, channels, width):
                    part = out[r - row0, base:base + width]
                    for c in range(width):
                        part[c] = part[c] + row[c]
        elif code == SUB_INPUT:
            for r in range(first, last):
                row = other[r // other_div]
                for base in range(0, channels, width):
                    part = out[r - row0, base:base + width]
                    for c in range(width):
                        part[c] = part[c] - row[c]
        elif code == RSUB_INPUT:
            for r in range(first, last):
                row = other[r // other_div]
                for base in range(0, channels, width):
                    part = out[r - row0, base:base + width]
                    for c in range(width):
                        part[c] = row[c] - part[c]
        elif code == MUL_INPUT:
            for r in range(first, last):
                row = other[r // other_div]
                for base in range(0, channels, width):
                    part = out[r - row0, base:base + width]
                    for c in range(width):
                        part[c] = part[c] * row[c]
        elif code == ADD_MEAN_INPUT:  # (0 + o0 + o1 + ...) / k in float32, as the short-axis mean takes it
            k = width // channels
            count = np.float32(k)
            for r in range(first, last):
                row = other[r // other_div]
                for c in range(channels):
                    total = np.float32(0.0) + row[k * c]
                    for j in range(1, k):
                        total += row[k * c + j]
                    out[r - row0, c] = out[r - row0, c] + total / count
        elif code == ADD_PADDED_INPUT:  # the padding's +0.0 is added too: -0.0 + 0.0 is +0.0, as in the model
            zero = np.float32(0.0)
            for r in range(first, last):
                row = other[r // other_div]
                head, tail = out[r - row0, :width], out[r - row0, width:]
                for c in range(width):
                    head[c] = head[c] + row[c]
                for c in range(tail.size):
                    tail[c] = tail[c] + zero


BLOCK_EPILOGUE, UNIT_EPILOGUE, SHRINK_EPILOGUE = 1, 2, 3  # the programs with a one-pass epilogue (epilogue_kind)
_NO_LIMITS = np.zeros(LANES, np.float32)  # block_epilogue's thresholds when it does not pack


@nb.njit(cache=True)
def epilogue_kind(codes):
    """BLOCK_EPILOGUE for the steps [mul, affine, add_input, dprelu] (a ReActNet block's scale, batch norm,
    residual and RPReLU after its binary convolution), UNIT_EPILOGUE for [affine, dprelu, add_input]
    (an FTBNN unit's batch norm, DPReLU and shortcut), SHRINK_EPILOGUE for [affine, add_mean_input, dprelu]
    (PokeBNN's shrinking unit), else 0 (:func:`apply_steps`, a pass per step)."""
    if codes.size == 4 and codes[0] == MUL and codes[1] == AFFINE and codes[2] == ADD_INPUT and codes[3] == DPRELU:
        return BLOCK_EPILOGUE
    if codes.size == 3 and codes[0] == AFFINE and codes[1] == DPRELU and codes[2] == ADD_INPUT:
        return UNIT_EPILOGUE
    if codes.size == 3 and codes[0] == AFFINE and codes[1] == ADD_MEAN_INPUT and codes[2] == DPRELU:
        return SHRINK_EPILOGUE
    return 0


@nb.njit(inline="always")
def _residual_row(row, residual):
    """``residual`` [C] = the second input's row, its channels repeated to fill C."""
    width = row.size
    for base in range(0, residual.size, width):
        part = residual[base:base + width]
        for c in range(width):
            part[c] = row[c]


@nb.njit(cache=True, error_model="numpy")
def block_epilogue(acc, first, last, params, first_rows, other, other_div, out, row0, pack_thresholds, pack_groups,
                   pack_shuffle, packed):
    """out[r] = dprelu(float32(acc[r - first]) * scale * bn_scale + bn_shift + residual) for rows first ..
    last-1: the steps [mul, affine, add_input, dprelu] of :func:`apply_steps` with the same float32
    operations in the same order, but in one vectorised pass instead of a pass per step (the int32 block
    ``acc`` [rows, >= C] holds row first at 0; ``other`` as in :func:`run_stages`; row r of the output in
    out[r - row0], as :func:`apply_steps` takes it).

    With whole 16-lane columns and a residual row per row it runs column by column through the block's rows
    (:func:`numbnn.kernels.intrinsics.block_epilogue_columns`: 2-3x faster on a block in L1, a probe on Zen 4,
    2026-12-07) and, if ``packed`` has words, one group and no shuffle, packs the rows' signs against
    ``pack_thresholds`` in the same pass, 16 bits per column (the little-endian uint16 quarters of the packed
    words; the quarters past C zeroed); otherwise row by row. Returns whether it packed (if not, the caller
    packs)."""
    channels = out.shape[1]
    width = other.shape[1]
    p, q, s = first_rows[0], first_rows[1], first_rows[3]
    if channels % LANES == 0 and width % LANES == 0 and other_div == 1:
        # column by column, each parameter vector loaded once for the block's rows; the row loop below loads all
        # seven for every 16 values
        words = packed.shape[1]
        packing = words > 0 and pack_groups == 1 and pack_shuffle == 1
        quarters = packed.view(np.uint16)  # [rows, 4 * words]: a word's bits 16k .. 16k + 15 are quarter k
        stride = 4 * words if packing else 0
        limits = pack_thresholds if packing else _NO_LIMITS
        for c0 in range(0, channels, LANES):
            block_epilogue_columns(acc, c0, acc.shape[1], params, p * channels + c0, q * channels + c0,
                                   s * channels + c0, channels, other, first * width + c0 % width, width, out,
                                   (first - row0) * channels + c0, channels, last - first, limits, c0 if packing else 0,
                                   quarters, first * stride + c0 // LANES, stride)
        if packing:
            for r in range(first, last):
                for k in range(channels // LANES, 4 * words):
                    quarters[r, k] = 0
        return packing
    residual = np.empty(channels, np.float32)
    for r in range(first, last):
        _residual_row(other[r // other_div], residual)
        a = acc[r - first]
        y = out[r - row0]
        for c in range(channels):
            v = np.float32(a[c]) * params[p, c]
            v = v * params[q, c] + params[q + 1, c]
            u = (v + residual[c]) - params[s, c]
            pos, neg = params[s + 1, c], params[s + 2, c]  # both loaded: a select, not a branch
            y[c] = (pos if u >= 0 else neg) * u - params[s + 3, c]
    return False


@nb.njit(cache=True, error_model="numpy")
def unit_epilogue(acc, first, last, params, first_rows, other, other_div, out, row0):
    """out[r] = dprelu(float32(acc[r - first]) * bn_scale + bn_shift) + residual: the steps [affine, dprelu,
    add_input] (FTBNN's unit, arXiv 2010.09294 Sec. 3.2: batch norm, DPReLU, then the shortcut) in one
    vectorised pass per row, the same float32 operations in the same order as :func:`apply_steps`
    (arguments as in :func:`block_epilogue`)."""
    channels = out.shape[1]
    q, s = first_rows[0], first_rows[1]
    residual = np.empty(channels, np.float32)
    for r in range(first, last):
        _residual_row(other[r // other_div], residual)
        a = acc[r - first]
        y = out[r - row0]
        for c in range(channels):
            v = np.float32(a[c]) * params[q, c] + params[q + 1, c]
            u = v - params[s, c]
            pos, neg = params[s + 1, c], params[s + 2, c]
            y[c] = ((pos if u >= 0 else neg) * u - params[s + 3, c]) + residual[c]


@nb.njit(cache=True, error_model="numpy")
def shrink_epilogue(acc, first, last, params, first_rows, other, other_div, out, row0):
    """The steps [affine, add_mean_input, dprelu] (PokeBNN's shrinking unit, arXiv 2112.00133: batch norm, the
    shortcut's mean of channel pairs, DPReLU) on the int32 rows first .. last-1 (``acc`` holds row first at 0;
    row r of the output in out[r - row0], ``other`` as in :func:`run_stages`) in one vectorised pass per 16
    channels (:func:`numbnn.kernels.intrinsics.shrink_unit_lanes`), the float32 operations of :func:`apply_steps`
    in its order, when the residual has two channels per channel, one row per row, and the channels are whole
    16-lane vectors. Returns whether it ran (if not, the caller runs the steps as passes)."""
    channels = out.shape[1]
    if other.shape[1] != 2 * channels or channels % LANES or other_div != 1:
        return False
    q, s = first_rows[0], first_rows[2]
    for r in range(first, last):
        for c in range(0, channels, LANES):
            shrink_unit_lanes(acc, (r - first) * acc.shape[1] + c, params, q * channels + c, s * channels + c,
                              channels, other, r * other.shape[1] + 2 * c, out, (r - row0) * channels + c)
    return True


@nb.njit(inline="always")
def is_moved_unit(codes):
    """Whether ``codes`` are [mul, add, affine, add_input, dprelu]: an RB-Net unit's scale and centring of its
    reshaped point-wise conv, then batch norm, residual and RPReLU after the move (:func:`moved_unit_epilogue`)."""
    return (codes.size == 5 and codes[0] == MUL and codes[1] == ADD and codes[2] == AFFINE and codes[3] == ADD_INPUT
            and codes[4] == DPRELU)


@nb.njit(cache=True, error_model="numpy")
def moved_unit_epilogue(acc, first, last, params, first_rows, other, pixels, moved, dest_pixels, out, packing,
                        pack_thresholds, pack_shifts, packed, images):
    """The steps [mul, add, affine, add_input, dprelu] on the int32 rows first .. last-1 (``acc`` holds row first
    at 0), each row's runs of C' = out.shape[1] channels written to their destinations as
    :func:`numbnn.kernels.binary_conv_driver.binary_conv`'s ``moved`` places them and the residual ``other``
    read there: the float32 operations of :func:`apply_steps` in its order, in one vectorised pass per run
    with nothing stored in between. The parameters of the steps after the move are the same for every run
    (repeated along the row): their first C' columns are read. With ``packing`` (the driver's
    ``moved_packing``), the signs of 16-channel groups of the moved map go to their uint16 quarters of
    ``packed`` ([images * rows, words]) in the same pass, as the next ``gather_pack`` would compute them."""
    width = out.shape[1]
    channels = params.shape[1]
    segments = channels // width  # O / C' (acc may have spare columns past O)
    p, q, s = first_rows[0], first_rows[2], first_rows[4]
    scale, shift, bn_scale, bn_shift = params[p], params[first_rows[1]], params[q], params[q + 1]
    shift_x, pos, neg, shift_y = params[s], params[s + 1], params[s + 2], params[s + 3]
    lanes = width % LANES == 0
    quarters = packed.view(np.uint16)  # [images * rows, 4 * words]: a word's bits 16k .. 16k + 15 are quarter k
    image_quarters = quarters.size // images if images > 0 else 0
    groups = width // LANES  # 16-channel groups per destination pixel
    packs = packing.size > 0
    for r in range(first, last):
        image, pixel = r // pixels, r % pixels
        row = acc[r - first]
        for k in range(segments):
            d = moved[pixel * segments + k]
            if d < 0:
                continue
            c0, target = k * width, (image * dest_pixels + d) * width
            if lanes:  # whole vectors: the intrinsic, since LLVM leaves the loop below scalar
                for j in range(groups):
                    c = j * LANES
                    quarter, limit = -1, 0
                    if packs:
                        m = 2 * (d * groups + j)
                        if packing[m] >= 0:
                            quarter, limit = image * image_quarters + packing[m], packing[m + 1]
                    moved_unit_lanes(acc, (r - first) * acc.shape[1] + c0 + c, params, p * channels + c0 + c,
                                     first_rows[1] * channels + c0 + c, q * channels + c, s * channels + c, channels,
                                     other, out, target + c, quarters, quarter, pack_thresholds, limit, pack_shifts, c)
                continue
            a, mul, add = row[c0:c0 + width], scale[c0:c0 + width], shift[c0:c0 + width]
            y, residual = out[image * dest_pixels + d], other[image * dest_pixels + d]
            for c in range(width):
                v = (np.float32(a[c]) * mul[c]) + add[c]
                v = (v * bn_scale[c] + bn_shift[c]) + residual[c]
                u = v - shift_x[c]
                y[c] = (pos[c] if u >= 0 else neg[c]) * u - shift_y[c]


@typed_njit(f"void({ROWS}, {PROGRAM}, {ROWS}, {ROWS}, int64, {ROWS})", parallel=True, cache=True, error_model="numpy")
def run_stages(x, codes, first_rows, params, other, other_div, out):
    """out[r] = the steps ``codes`` applied in order to x[r] (float32 [R, C]; see the module doc)."""
    rows, channels = x.shape
    for block in nb.prange((rows + ROW_BLOCK - 1) // ROW_BLOCK):
        first, last = block * ROW_BLOCK, min(rows, (block + 1) * ROW_BLOCK)
        for r in range(first, last):
            for c in range(channels):
                out[r, c] = x[r, c]
        apply_steps(out, 0, first, last, codes, first_rows, params, other, other_div)


@typed_njit(f"void({ROWS}, int32[::1], int64, float32[::1], {PROGRAM}, {ROWS}, {ROWS}, {ROWS}, int64, {ROWS})",
             parallel=True, cache=True, error_model="numpy")
def run_stages_gathered(x, index, run, fill, codes, first_rows, params, wide_params, other, other_div, out):
    """:func:`run_stages` on a rearranged view of x [N, S]: out row r, channel c starts from
    x[image, index[(r % rows) * C + c]] (or fill[-1 - index] for padding), rows = index.size / C.

    ``run`` (:func:`numbnn.kernels.threshold_packing.gather_runs`): every aligned chunk of ``run``
    elements of the index is ``run`` consecutive source elements or ``run`` padding constants, so a
    chunk is copied by one contiguous (vector) loop; element by element, RB-Net's depth-to-space took
    2.5-2.8x as long as the steps themselves (a probe on Zen 4, 2026-12-07).

    ``wide_params`` [rows, W]: ``params`` repeated W / C times along a row (W = C: none). With W > C a
    whole block's rows are stepped as rows of W elements if no step reads ``other`` or it has out's shape
    (row for row): the same operation on every element, with the per-row loop overhead of
    few channels paid W / C times less (RB-Net's 32-channel steps: 0.45x at W = 256, a probe on Zen 4,
    2026-12-07)."""
    channels = out.shape[1]
    rows = index.size // channels
    chunks = channels // run
    total = out.shape[0]
    wide = wide_params.shape[1]
    per_wide = wide // channels  # out rows per wide row
    paired_other = other.shape[0] == total and other.shape[1] == channels and other_div == 1
    reads_other = False
    for s in range(codes.size):
        reads_other = reads_other or codes[s] >= ADD_INPUT
    widen = per_wide > 1 and (paired_other or not reads_other)
    flat_out, flat_other = out.reshape(-1), other.reshape(-1)
    for block in nb.prange((total + ROW_BLOCK - 1) // ROW_BLOCK):
        first, last = block * ROW_BLOCK, min(total, (block + 1) * ROW_BLOCK)
        for r in range(first, last):
            image, y = x[r // rows], out[r]
            base = (r % rows) * channels
            for k in range(chunks):  # views from index 0: Numba proves their indices non-negative, so it vectorises
                c0 = k * run
                source = index[base + c0]
                chunk = y[c0:c0 + run]
                if source >= 0:
                    values = image[source:source + run]
                    for j in range(run):
                        chunk[j] = values[j]
                else:
                    for j in range(run):
                        chunk[j] = fill[-1 - index[base + c0 + j]]
        if widen and (last - first) % per_wide == 0:
            n_wide = (last - first) // per_wide
            block_out = flat_out[first * channels:last * channels].reshape((n_wide, wide))
            if paired_other:
                block_other = flat_other[first * channels:last * channels].reshape((n_wide, wide))
                apply_steps(block_out, 0, 0, n_wide, codes, first_rows, wide_params, block_other, 1)
            else:
                apply_steps(block_out, 0, 0, n_wide, codes, first_rows, wide_params, other, other_div)
        else:
            apply_steps(out, 0, first, last, codes, first_rows, params, other, other_div)
