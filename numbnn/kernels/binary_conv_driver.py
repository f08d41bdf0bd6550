"""The packed runtime's binary convolution: one driver, an output transform chosen per call.

Larq Compute Engine's bconv2d is the model: one kernel computes the XNOR-popcount accumulators of a
block of output pixels and, while they are still in the cache, applies the transform its use needs.

Math. Per output pixel p and channel o of group g, with the receptive field's K = KH*KW*C_g signs
packed into words (zero words, i.e. +1, for padding taps; tail bits 0 in both operands)::

    acc[p, o] = K - 2 * sum_t popcount(field[p, t] XOR w[o, t])          (the +1/-1 dot product)
              + border correction of p                                  (numbnn.kernels.padding)

Tail bits are 0 in fields and weights alike, so they agree and add nothing to the popcount; K counts
only real channels. Transforms (``transform``):

- ``INT32``: acc_out[p] = acc[p] (the bare convolution: training's forward, :func:`numbnn.kernels.binary_conv2d`,
  and packed nodes whose next node reads the integers). With O/groups a multiple of TILE_COLS a full
  block's tiles are written straight into acc_out.
- ``STEPS``: out[p] = the per-channel float32 steps of :mod:`numbnn.kernels.steps` applied to
  float32(acc[p]) (scale, batch norm, residual, RPReLU, ...); for a ReActNet block
  [mul, affine, add_input, dprelu], an FTBNN unit [affine, dprelu, add_input] and PokeBNN's shrinking unit
  [affine, add_mean_input, dprelu] (:func:`~numbnn.kernels.steps.shrink_epilogue`) the same operations in
  one vectorised pass (:func:`numbnn.kernels.steps.block_epilogue`, which may pack the signs in that pass
  too, :func:`~numbnn.kernels.steps.unit_epilogue`).
  With ``packed`` words per row (> 0) the float rows are also packed through ``pack_thresholds`` (bit =
  y < t[c], per group; the next RSign's bits), after a channel shuffle in ``pack_shuffle`` groups if that
  is above 1 (FTBNN's shuffle before the next binary conv): no second pass over ``out``.

Layout. Per block of CONV_BLOCK output pixels (the pixel walk of :mod:`numbnn.kernels.geometry`):
the pixels' receptive fields of every group are gathered into a small buffer [groups, pixels, words]
(an ungrouped 1x1 convolution without stride or padding reads full blocks of x's rows in place), then
multiplied by each group's weight panels tile by tile (:func:`numbnn.kernels.tiles.tile_dot`). With
``tap_bits`` > 0 (a group's channel count, a divisor of 64) taps are packed densely, so few channels
do not leave most of every word empty: a kernel row's taps in one word where that costs no extra words
(built once per input row, :func:`_row_words`, so a receptive field is KH word copies), else in tap
order across the field's words, read from a copy of x with zero words around it so that no tap is tested
against the image's edges (:func:`_zero_bordered`, :func:`_gather_dense`; :func:`weight_panels` gives
both layouts).

The entry point has an explicit signature and no bounds checks: its callers check every shape
(:func:`numbnn.kernels.binary_conv2d` and :mod:`numbnn.inference.ops`).
"""

import numba as nb
import numpy as np

from numbnn.kernels.geometry import next_pixel, pixel_coordinates
from numbnn.kernels.padding import add_border_corrections
from numbnn.kernels.steps import (
    BLOCK_EPILOGUE, PROGRAM, ROWS, SHRINK_EPILOGUE, UNIT_EPILOGUE, apply_steps, block_epilogue, epilogue_kind,
    is_moved_unit, moved_unit_epilogue, shrink_epilogue, unit_epilogue,
)
from numbnn.kernels.threshold_packing import NO_SHUFFLE, WORDS, difference_scratch, pack_rows_below
from numbnn.kernels.tiles import TILE_COLS, TILE_ROWS, column_panels, tile_dot
from numbnn.kernels.typed import typed_njit

INT32, STEPS = 0, 1  # output transforms
CONV_BLOCK = 16 * TILE_ROWS  # output pixels per block
MAX_TASKS = 128  # parallel tasks at most, each a run of whole blocks (a constant: a thread count read
# inside the jitted driver would keep Numba from caching it)



def weight_panels(weight, per_group, groups):
    """(tap_bits, panels, k) of packed OHWI ``weight`` [O, KH, KW, words], ``per_group`` = C_g input
    channels in each of ``groups`` groups, for :func:`binary_conv`.

    Each group's rows [O/groups, KH*KW*words] become column panels; with C_g channels per group a
    divisor of 64 below 64 and more than one tap, the taps are packed densely instead (``tap_bits`` =
    C_g), in one of two layouts (:func:`row_layout` chooses):

    - rows: each kernel row's KW taps side by side in one word (tap j of row i at word i, bit C_g * j),
      as :func:`_gather_rows` gives the activations;
    - flat: tap t at word t // (64/C_g), bit C_g * (t % (64/C_g)), as :func:`_gather_dense` gives them.

    ``k`` = KH*KW*C_g, the real bits of a receptive field.
    """
    out_channels, kh, kw, words = weight.shape
    taps = kh * kw
    tap_bits = per_group if taps > 1 and per_group < 64 and 64 % per_group == 0 else 0
    rows = weight.reshape(out_channels, taps * words)
    if tap_bits:
        by_rows = row_layout(kh, kw, tap_bits)
        per_word = kw if by_rows else 64 // per_group
        dense = np.zeros((out_channels, kh if by_rows else -(-taps // per_word)), np.uint64)
        for tap in range(taps):
            slot = tap % kw if by_rows else tap % per_word
            dense[:, tap // per_word] |= rows[:, tap] << np.uint64(per_group * slot)
        rows = dense
    matrices = rows.reshape(groups, out_channels // groups, -1)
    return tap_bits, np.stack([column_panels(np.ascontiguousarray(m)) for m in matrices]), taps * per_group


def row_layout(kh, kw, tap_bits):
    """The dense taps go by kernel rows (one word per row) when a row fits in a word and that takes no
    more words than the flat layout: then a receptive field is KH word copies from words built once per
    input row (:func:`_row_words`) instead of KH*KW shifted ORs. 3x3 with 16 channels per group (FTBNN's
    stage 1) takes 3 words either way; with 32 channels the rows take 6 words against 5, and the extra
    popcounts cost more than the gather saves. (The grouped-conv changes of 2026-12-06, this layout
    among them: `benchmarks/grouped_conv_cpu.py` in docs/performance.md.)"""
    return kw * tap_bits <= 64 and kh <= -(-kh * kw * tap_bits // 64)


# The driver's copy of row_layout (plain Python above: weight_panels runs when a model loads, and a
# jitted function called from Python would be compiled in every new process)
_row_layout = nb.njit(inline="always")(row_layout)


_SIGNATURE = (
    "void(uint64[:, :, :, ::1], UniTuple(int64, 10), int64, uint64[:, :, :, ::1], int64, int64[::1], int32[:, ::1], "
    f"int64, int32[:, ::1], {PROGRAM}, {ROWS}, {ROWS}, int64, {ROWS}, float32[::1], int64, int64, {WORDS}, {ROWS}, "
    "int64[::1], int64, int64[::1], float32[::1])"
)


_NO_PROGRAM = np.zeros(0, np.int64)  # the STEPS-only arguments of an INT32 call
_NO_ROWS = np.zeros((0, 1), np.float32)
_NO_THRESHOLDS = np.zeros(0, np.float32)
_NO_PACKED = np.zeros((0, 0), np.uint64)
# binary_conv's (moved, dest_pixels, moved_packing, pack_shifts) when rows stay where they are
NO_MOVES = (np.zeros(0, np.int64), 0, np.zeros(0, np.int64), np.zeros(0, np.float32))


def binary_conv_int32(x, geometry, tap_bits, panels, k, border_row, correction, out):
    """:func:`binary_conv` with the INT32 transform: the bare convolution into int32 ``out`` [N*Ho*Wo, O]."""
    binary_conv(x, geometry, tap_bits, panels, k, border_row, correction, INT32, out,
                _NO_PROGRAM, _NO_PROGRAM, _NO_ROWS, _NO_ROWS, 1, _NO_ROWS, _NO_THRESHOLDS, NO_SHUFFLE, 1, _NO_PACKED, _NO_ROWS,
                *NO_MOVES)


@nb.njit(cache=True)
def _gather(x, first_word, words, first, last, geometry, cols):
    """cols[r - first] = packed receptive field of output pixel r in words first_word .. +words-1 of each
    input pixel, taps in (kh, kw) row-major order (zero words stay for padding taps)."""
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = geometry
    n, h, w, all_words = x.shape
    flat = x.reshape(-1)
    b, oy, ox = pixel_coordinates(first, ho, wo)
    for r in range(first, last):
        y0, x0 = oy * sh - ph, ox * sw - pw
        interior_x = x0 >= 0 and x0 + (kw - 1) * dw < w
        for i in range(kh):
            iy = y0 + i * dh
            if iy < 0 or iy >= h:
                continue
            if interior_x and dw == 1 and words == all_words:  # the tap row is one run of kw pixels' words
                start = ((b * h + iy) * w + x0) * words
                base = i * kw * words
                for t in range(kw * words):
                    cols[r - first, base + t] = flat[start + t]
                continue
            for j in range(kw):
                ix = x0 + j * dw
                if 0 <= ix < w:
                    start = ((b * h + iy) * w + ix) * all_words + first_word
                    base = (i * kw + j) * words
                    for t in range(words):
                        cols[r - first, base + t] = flat[start + t]
        b, oy, ox = next_pixel(b, oy, ox, ho, wo)


@nb.njit(parallel=True, cache=True)
def _row_words(x, tap_bits, geometry, rows):
    """rows[b, iy, ix + pw, g] = the KW taps of a kernel row starting at input column ix (from -pw):
    group g's bits of pixels ix, ix + dw, ... at bit offsets 0, tap_bits, ... (zero for columns outside
    the image). Built once per call, so a receptive field in the rows layout is KH word copies."""
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = geometry
    n, h, w, groups = x.shape
    for line in nb.prange(n * h):
        b, iy = line // h, line % h
        for column in range(rows.shape[2]):
            ix = column - pw
            for g in range(groups):
                value = np.uint64(0)
                for j in range(kw):
                    jx = ix + j * dw
                    if 0 <= jx < w:
                        value |= x[b, iy, jx, g] << np.uint64(j * tap_bits)
                rows[b, iy, column, g] = value


@nb.njit(cache=True)
def _gather_rows(rows, first, last, geometry, cols):
    """Like :func:`_gather` in the rows layout of :func:`weight_panels`: word i of output pixel r's field
    is its kernel row i, ``rows`` at that row's first column (:func:`_row_words`); rows outside the image
    stay zero words."""
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = geometry
    n, h, width, groups = rows.shape
    flat = rows.reshape(-1)
    b, oy, ox = pixel_coordinates(first, ho, wo)
    for r in range(first, last):
        y0, x0 = oy * sh - ph, ox * sw - pw
        for i in range(kh):
            iy = y0 + i * dh
            if 0 <= iy < h:
                start = ((b * h + iy) * width + x0 + pw) * groups
                for g in range(groups):
                    cols[g, r - first, i] = flat[start + g]
        b, oy, ox = next_pixel(b, oy, ox, ho, wo)


@nb.njit(parallel=True, cache=True)
def _zero_bordered(x, ph, pw, bordered):
    """bordered [N, H + 2*ph, W + 2*pw, words] = x with ph rows and pw columns of zero words (+1 signs, the
    padding the border corrections assume) on every side: receptive fields then need no bounds tests."""
    n, h, w, words = x.shape
    hp, wp = h + 2 * ph, w + 2 * pw
    for line in nb.prange(n * hp):
        b, y = line // hp, line % hp
        target = bordered[b, y]
        if y < ph or y >= ph + h:
            target[:] = 0
            continue
        source = x[b, y - ph]
        for ix in range(wp):
            inside = pw <= ix < pw + w
            for t in range(words):
                target[ix, t] = source[ix - pw, t] if inside else np.uint64(0)


@nb.njit(cache=True)
def _tap_offsets(geometry, wp, groups):
    """Tap t's word in a zero-bordered x ([N, H + 2*ph, wp, groups]) relative to its receptive field's first
    word, for :func:`_gather_dense` (built once per call, not per block)."""
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = geometry
    offsets = np.empty(kh * kw, np.int64)
    for t in range(kh * kw):
        offsets[t] = ((t // kw) * dh * wp + (t % kw) * dw) * groups
    return offsets


@nb.njit(cache=True)
def _gather_dense(bordered, tap_bits, offsets, first, last, geometry, cols):
    """Like :func:`_gather` for one-word groups of ``tap_bits`` channels in the flat dense layout, from x
    with its padding made zero words (:func:`_zero_bordered`): tap t's bits go to word t // (64 /
    tap_bits) at bit offset tap_bits * (t % (64 / tap_bits)) (their tails are 0, so OR is exact). Every
    word is built in a register from the tap offsets (:func:`_tap_offsets`) and stored once; testing each
    tap against the image's edges (as :func:`_gather` does) took 2.4-3.6x as long, nearly two thirds of
    bnn-small's 28x28x32 conv (INT32, batch 256; a probe on Zen 4, 2026-12-07)."""
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = geometry
    n, hp, wp, groups = bordered.shape
    flat = bordered.reshape(-1)
    taps = kh * kw
    per_word = 64 // tap_bits
    full = taps // per_word  # words with per_word taps; one more holds the rest
    b, oy, ox = pixel_coordinates(first, ho, wo)
    for r in range(first, last):
        start = ((b * hp + oy * sh) * wp + ox * sw) * groups
        for g in range(groups):
            field = start + g
            for m in range(full):
                value = flat[field + offsets[m * per_word]]
                for j in range(1, per_word):
                    value |= flat[field + offsets[m * per_word + j]] << np.uint64(j * tap_bits)
                cols[g, r - first, m] = value
            if full * per_word < taps:
                value = np.uint64(0)
                for j in range(taps - full * per_word):
                    value |= flat[field + offsets[full * per_word + j]] << np.uint64(j * tap_bits)
                cols[g, r - first, full] = value
        b, oy, ox = next_pixel(b, oy, ox, ho, wo)


@nb.njit(cache=True)
def _gather_3x3_pairs(bordered, first, last, geometry, cols):
    """:func:`_gather_dense` for 3x3 kernels of 32 channels per group (two taps per word, five words; the
    zoo's commonest dense case: bnn-small's and ReActNet-A's first convs, FTBNN's second stage), the nine
    tap offsets held in registers and the pixels of one output row in an inner loop: 0.45-0.6x the time
    of the generic loop (a probe on Zen 4, 2026-12-07)."""
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = geometry
    n, hp, wp, groups = bordered.shape
    flat = bordered.reshape(-1)
    right, down = dw * groups, dh * wp * groups  # one tap to the right, one kernel row down
    high = np.uint64(32)
    r = first
    while r < last:
        b, oy, ox0 = pixel_coordinates(r, ho, wo)
        count = min(wo - ox0, last - r)
        line = (b * hp + oy * sh) * wp
        for g in range(groups):
            target = cols[g]
            for q in range(count):
                t = (line + (ox0 + q) * sw) * groups + g
                row = r - first + q
                target[row, 0] = flat[t] | (flat[t + right] << high)
                target[row, 1] = flat[t + 2 * right] | (flat[t + down] << high)
                target[row, 2] = flat[t + down + right] | (flat[t + down + 2 * right] << high)
                target[row, 3] = flat[t + 2 * down] | (flat[t + 2 * down + right] << high)
                target[row, 4] = flat[t + 2 * down + 2 * right]
        r += count


@typed_njit(_SIGNATURE, parallel=True, cache=True, error_model="numpy")
def binary_conv(x, geometry, tap_bits, panels, k, border_row, correction, transform, acc_out,
                codes, first_rows, params, other, other_div, out, pack_thresholds, pack_shuffle, pack_groups, packed, pooled,
                moved, dest_pixels, moved_packing, pack_shifts):
    """One binary convolution of packed NHWC ``x`` [N, H, W, words] and its output transform.

    ``geometry`` = (kh, kw, sh, sw, ph, pw, dh, dw, ho, wo); ``panels`` [groups, panels, words, TILE_COLS]
    each group's weights as column panels (:func:`numbnn.kernels.tiles.column_panels`); ``k`` the bits
    of a receptive field (KH*KW*C_g); ``border_row``/``correction`` the padding table of
    :func:`numbnn.kernels.padding.border_corrections` (O columns). ``transform`` INT32 writes
    ``acc_out`` [N*Ho*Wo, O]; STEPS writes ``out`` [N*Ho*Wo, O] through the program (``codes``,
    ``first_rows``, ``params``, ``other``, ``other_div``) and, if ``packed`` has words, its signs (after a
    channel shuffle in ``pack_shuffle`` groups if that is above 1: the shuffle folded into the packing).
    If ``pooled`` has rows, STEPS also writes the 2x2 average pool of ``out`` into it ([N*Hp*Wp, O], Hp =
    ceil(Ho/2), Wp = ceil(Wo/2), windows from pixel 0, padding not counted: :func:`_pool_rows`); blocks
    are then whole pairs of output rows of one image, so a window's four pixels are in one block, still
    in the cache, and are summed in the float model's order. An ``out`` with no rows is not kept: each
    block's float rows go to its task's scratch and only their packed signs and pool leave it (a
    downsampling shortcut reads only the pool; without writing that map ReActNet-A's packed batch of 256
    took 0.895 of the time, bnn-small's 0.923: `benchmarks/paired_rewrites.py --rewrite unread-maps`, Zen 4,
    2026-12-07).

    With ``moved`` not empty (STEPS, no packed or pooled output) each output row is split into segments of
    C' = out.shape[1] channels that land on other pixels (RB-Net's depth-to-space, with its shift and crop):
    segment s of pixel p of image b is row b * ``dest_pixels`` + moved[p * S + s] of ``out`` (S = O / C'; -1:
    dropped). The program then reads ``other`` [N * dest_pixels, C'] at each segment's destination (gathered
    per block, :func:`_move_segments`) and runs on the block's rows in the scratch, which go to their
    destinations afterwards (the same function the other way): the steps before and after the move in one pass, and
    the unmoved map never written. RB-Net's unit ([mul, add, affine, add_input, dprelu], C' a multiple of 16)
    runs in one vectorised pass (:func:`numbnn.kernels.steps.moved_unit_epilogue`), which can also pack the
    moved map's signs as the next unit's ``gather_pack`` would: with ``moved_packing`` not empty, the 16 channels
    from 16j of destination pixel d (of an image) go to the uint16 quarter moved_packing[2m] (m = d * C'/16 + j;
    -1: not packed) of the image's rows of ``packed``, bit i = (y + pack_shifts[16j + i]) - t < 0 with t =
    pack_thresholds[moved_packing[2m + 1] + i]; ``packed`` holds the padding's bits already.
    """
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = geometry
    n, h, w, all_words = x.shape
    groups, n_panels = panels.shape[0], panels.shape[1]
    words = all_words // groups
    pixels = ho * wo
    rows = n * pixels
    out_channels = correction.shape[1]
    per_group = out_channels // groups
    padded = n_panels * TILE_COLS  # a group's columns in the tile results (per_group, rounded up)
    # Group g's tiles start at column g * per_group; a group whose last panel is partly empty spills into
    # the next group's first columns, which that group's own tiles overwrite later (groups run in order),
    # and the last group's spill goes to the spare columns past O: no copy drops the padding columns.
    width = out_channels - per_group + padded
    flat = x.reshape(n * h * w, all_words)
    pointwise = kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0 and groups == 1
    # INT32 with whole panels in every group: full blocks' tiles go straight into acc_out (no copy)
    direct = transform == INT32 and padded == per_group
    by_rows = tap_bits > 0 and _row_layout(kh, kw, tap_bits)
    pairs_3x3 = tap_bits == 32 and kh == 3 and kw == 3
    # what the dense-tap gathers read, built once per call
    if by_rows:  # the rows layout's words, [N, H, W + 2*pw, groups]
        prepared = np.empty((n, h, w + 2 * pw, groups), np.uint64)
        _row_words(x, tap_bits, geometry, prepared)
    elif tap_bits:  # the flat layout's: x with zero words around it, [N, H + 2*ph, W + 2*pw, groups]
        prepared = np.empty((n, h + 2 * ph, w + 2 * pw, groups), np.uint64)
        _zero_bordered(x, ph, pw, prepared)
    else:
        prepared = np.empty((0, 0, 0, 0), np.uint64)
    offsets = _tap_offsets(geometry, prepared.shape[2], groups)
    # Each task takes a run of blocks and allocates its scratch once: per block, the allocations and the
    # zeroed packing scratch took 1-5% of a packed batch of 256 (a probe on Zen 4, 2026-12-07).
    pooling = pooled.shape[0] > 0
    pairs = max(1, CONV_BLOCK // (2 * wo))  # pooling: output row pairs per block (2*wo <= CONV_BLOCK, checked by the caller)
    per_image = (ho + 2 * pairs - 1) // (2 * pairs)  # pooling: blocks per image
    n_blocks = n * per_image if pooling else (rows + CONV_BLOCK - 1) // CONV_BLOCK
    n_tasks = min(n_blocks, MAX_TASKS)
    scratch_rows = CONV_BLOCK if packed.shape[1] > 0 else 0
    moving = moved.size > 0
    keep = out.shape[0] > 0 and not moving  # rows_out is out itself
    for task in nb.prange(n_tasks):
        own_tiles = np.empty((CONV_BLOCK, width), np.int32)
        fields = np.empty((groups, CONV_BLOCK, panels.shape[2]), np.uint64)
        difference = difference_scratch(scratch_rows, out_channels)  # pack_rows_below's
        own_out = np.empty((0 if keep else CONV_BLOCK, out_channels), np.float32)
        moved_other = np.empty((CONV_BLOCK if moving else 0, out_channels), np.float32)  # other at the destinations
        for block in range(task * n_blocks // n_tasks, (task + 1) * n_blocks // n_tasks):
            if pooling:  # output rows 2*pairs*q .. of image b
                b, q = block // per_image, block % per_image
                first = (b * ho + 2 * pairs * q) * wo
                last = (b * ho + min(ho, 2 * pairs * (q + 1))) * wo
            else:
                first, last = block * CONV_BLOCK, min(rows, (block + 1) * CONV_BLOCK)
            in_place = direct and last - first == CONV_BLOCK
            if in_place:
                tiles, tile_row = acc_out, first
            else:
                tiles, tile_row = own_tiles, 0
            # a 1x1 conv reads its input rows in place, whole tiles of them: a pooling block's last tile may read
            # rows past the block (its results unused), but not past the input
            gathered = not (pointwise and first + (last - first + TILE_ROWS - 1) // TILE_ROWS * TILE_ROWS <= rows)
            if gathered:  # every group's receptive fields, [groups, CONV_BLOCK, field words]
                if by_rows:
                    fields[:] = 0
                    _gather_rows(prepared, first, last, geometry, fields)
                elif pairs_3x3:  # these two write every word of every field
                    _gather_3x3_pairs(prepared, first, last, geometry, fields)
                elif tap_bits:
                    _gather_dense(prepared, tap_bits, offsets, first, last, geometry, fields)
                else:  # whole words per group: one run of words per tap and group
                    fields[:] = 0
                    for g in range(groups):
                        _gather(x, g * words, words, first, last, geometry, fields[g])
            for g in range(groups):
                if gathered:
                    source, row0 = fields[g], 0
                else:
                    source, row0 = flat, first
                for panel in range(n_panels):
                    for tile in range(0, last - first, TILE_ROWS):
                        tile_dot(source, row0 + tile, panels[g], panel, k, tiles, tile_row + tile, g * per_group + panel * TILE_COLS)
            if in_place:  # only the padding correction is left
                add_border_corrections(acc_out, first, first, last - first, pixels, border_row, correction, 0, out_channels)
                continue
            acc = tiles  # [CONV_BLOCK, >= O], columns past O unused
            add_border_corrections(acc, 0, first, last - first, pixels, border_row, correction, 0, out_channels)
            if transform == INT32:  # row views indexed from 0: the copies vectorise (see apply_steps)
                for r in range(first, last):
                    source, target = acc[r - first], acc_out[r]
                    for o in range(out_channels):
                        target[o] = source[o]
                continue
            if keep:  # output row r in rows_out[r - row0]
                rows_out, row0 = out, 0
            else:
                rows_out, row0 = own_out, first
            if moving and is_moved_unit(codes):  # RB-Net's unit: one pass, straight to the destinations
                moved_unit_epilogue(acc, first, last, params, first_rows, other, pixels, moved, dest_pixels, out,
                                    moved_packing, pack_thresholds, pack_shifts, packed, n)
                continue
            kind = 0 if moving else epilogue_kind(codes)
            packed_here = False
            if kind == BLOCK_EPILOGUE:
                packed_here = block_epilogue(acc, first, last, params, first_rows, other, other_div, rows_out, row0,
                                             pack_thresholds, pack_groups, pack_shuffle, packed)
            elif kind == UNIT_EPILOGUE:
                unit_epilogue(acc, first, last, params, first_rows, other, other_div, rows_out, row0)
            elif kind == SHRINK_EPILOGUE and shrink_epilogue(acc, first, last, params, first_rows, other, other_div,
                                                             rows_out, row0):
                pass  # ran in one pass; otherwise the passes below
            else:
                for r in range(first, last):
                    source, target = acc[r - first], rows_out[r - row0]
                    for o in range(out_channels):
                        target[o] = np.float32(source[o])
                if moving:  # the block's rows from 0 in the scratch, other's too
                    _move_segments(moved_other, first, last, pixels, moved, dest_pixels, other, True)
                    apply_steps(rows_out, 0, 0, last - first, codes, first_rows, params, moved_other, 1)
                    _move_segments(rows_out, first, last, pixels, moved, dest_pixels, out, False)
                    continue
                apply_steps(rows_out, row0, first, last, codes, first_rows, params, other, other_div)
            if packed.shape[1] > 0 and not packed_here:
                pack_rows_below(rows_out, row0, first, last, pack_thresholds, pack_shuffle, pack_groups, difference,
                                packed)
            if pooling:
                _pool_rows(rows_out, row0, first, last, ho, wo, pooled)


@nb.njit(cache=True)
def _move_segments(rows, first, last, pixels, moved, dest_pixels, moved_rows, into_rows):
    """Between the output rows first .. last-1 (row r in rows[r - first]) and ``moved_rows``, the rows at the
    segments' destinations (see :func:`binary_conv`'s ``moved``): with ``into_rows`` each segment takes its
    destination's row (the second input, gathered; a dropped segment's channels are left as they are, the
    steps run on them and nothing reads them), else each destination row takes its segment (the output)."""
    width = moved_rows.shape[1]
    segments = rows.shape[1] // width
    for r in range(first, last):
        image, pixel = r // pixels, r % pixels
        row = rows[r - first]
        for s in range(segments):
            d = moved[pixel * segments + s]
            if d < 0:
                continue
            part, target = row[s * width:(s + 1) * width], moved_rows[image * dest_pixels + d]
            if into_rows:
                for c in range(width):
                    part[c] = target[c]
            else:
                for c in range(width):
                    target[c] = part[c]


@nb.njit(cache=True)
def _pool_rows(out, row0, first, last, ho, wo, pooled):
    """pooled[window] = the mean of its real pixels of ``out`` for the 2x2 windows (stride 2, from pixel 0;
    windows past an odd edge count one row or column) of output rows first .. last-1, whole pairs of rows of
    one image (row r in out[r - row0]): :func:`numbnn.kernels.pooling.avg_pool2d`'s operations in its order
    (from 0.0, row by row, then / the float32 count), so the same bits as pooling ``out`` afterwards. A whole
    window's four pixels are summed in registers and stored once: summing into the pooled row, which LLVM
    could not prove apart from the pixels, ran about 3x slower (a probe on Zen 4, 2026-12-07)."""
    hp, wp = (ho + 1) // 2, (wo + 1) // 2
    channels = out.shape[1]
    b, y0 = first // (ho * wo), (first // wo) % ho
    four = np.float32(4.0)
    for py in range(y0 // 2, (y0 + (last - first) // wo + 1) // 2):
        for px in range(wp):
            target = pooled[(b * hp + py) * wp + px]
            rows_in, cols_in = min(2, ho - 2 * py), min(2, wo - 2 * px)
            if rows_in == 2 and cols_in == 2:
                top = (b * ho + 2 * py) * wo + 2 * px - row0
                p00, p01, p10, p11 = out[top], out[top + 1], out[top + wo], out[top + wo + 1]
                for c in range(channels):
                    target[c] = ((((np.float32(0.0) + p00[c]) + p01[c]) + p10[c]) + p11[c]) / four
                continue
            for c in range(channels):
                target[c] = 0.0
            for iy in range(2 * py, 2 * py + rows_in):
                for ix in range(2 * px, 2 * px + cols_in):
                    source = out[(b * ho + iy) * wo + ix - row0]
                    for c in range(channels):
                        target[c] += source[c]
            count = np.float32(rows_in * cols_in)
            for c in range(channels):
                target[c] /= count
