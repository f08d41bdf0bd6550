"""Numba loops of the packed runtime that the general kernels do not have.

- :func:`pack_below`: sign packing against per-channel float thresholds (RSign / LearnableBias folded
  into the packing), with per-group word alignment; :func:`pack_rows_below` packs a block of rows, also
  inside :func:`conv_steps` while its output rows are in the cache.
- :func:`pack_acc_below`: the same for int32 accumulators against integer thresholds with a per-channel
  flip (batch norm + sign folded into the binary conv's output, LCE's "bitpacked output").
- :func:`run_stages`: a short program of per-channel float32 steps (scale, batch norm, bias, residual
  add, DPReLU, ...) applied to each row in one pass, so a binary layer's int32 output becomes the next
  float activation without a memory pass per step.

Each loop is parallel over rows (pixels of the whole batch). The Python wrappers in
:mod:`numbnn.inference.ops` check every shape first: these loops do no bounds checks of their own.
"""

import numba as nb
import numpy as np

from numbnn.kernels.intrinsics import sign_bits64
from numbnn.kernels.tiles import TILE_COLS, TILE_ROWS, tile_dot

ROW_BLOCK = 64  # rows per parallel task: amortises the task's scratch buffer and step dispatch

# Step codes of run_stages (the names are in numbnn.inference.ops.STAGES).
MUL, ADD, SUB, RSUB, DIV, RDIV, AFFINE, DPRELU, RELU, HARD_SIGMOID, FAKE_QUANT, SIGN, NEG = range(13)
ADD_INPUT, SUB_INPUT, RSUB_INPUT, MUL_INPUT = range(13, 17)


@nb.njit(parallel=True, cache=True)
def pack_below(x, thresholds, groups, packed):
    """packed[r] bit i of group g's word j = x[r, g*Cg + 64*j + i] < thresholds[...] (tail bits 0).

    x < t exactly when x - t < 0 (a float difference is 0 only for equal operands, and NaN compares
    false both ways), so each row's differences go through the vector sign-mask of 64 elements.
    """
    rows, channels = x.shape
    if groups == 1 and 64 % channels == 0:
        _pack_short_rows(x, thresholds, packed)
        return
    n_blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
    for block in nb.prange(n_blocks):
        difference = np.zeros((ROW_BLOCK, channels + 64), np.float32)  # room for a full 64-lane read at the tail
        pack_rows_below(x, block * ROW_BLOCK, min(rows, (block + 1) * ROW_BLOCK), thresholds, groups, difference, packed)


@nb.njit(inline="always")
def _pack_signs_row(difference, groups, words, per_group, out):
    """out[g*words + j] = sign bits of group g's 64-lane run j of ``difference`` (bits past the group: 0)."""
    for g in range(groups):
        for j in range(words):
            start = g * per_group + 64 * j
            count = min(64, per_group - 64 * j)
            word = sign_bits64(difference, start)
            if count < 64:
                word &= (np.uint64(1) << np.uint64(count)) - np.uint64(1)
            out[g * words + j] = word


@nb.njit(cache=True)
def pack_rows_below(x, first, last, thresholds, groups, difference, packed):
    """Rows first .. last-1 of :func:`pack_below` (``difference``: float32 scratch [>= last - first, C + 64],
    zero past C). All the rows' differences are written before any is read back as 64 lanes: a wide
    read right after the narrow writes of the same row waits for them (3x slower per row at 32 channels)."""
    channels = x.shape[1]
    per_group = channels // groups
    words = (per_group + 63) // 64
    for r in range(first, last):
        for c in range(channels):
            difference[r - first, c] = x[r, c] - thresholds[c]
    for r in range(first, last):
        _pack_signs_row(difference[r - first], groups, words, per_group, packed[r])


@nb.njit(parallel=True, cache=True)
def _pack_short_rows(x, thresholds, packed):
    """:func:`pack_below` for one group of C channels, C a divisor of 64: x's rows read as one flat run,
    64 values (64 / C rows) per vector sign-mask, the word then cut into the rows' words. A row of 32
    channels no longer pays a whole row's loop and a half-empty 64-lane read."""
    rows, channels = x.shape
    flat = x.reshape(-1)
    tiled = np.empty(64, np.float32)  # thresholds repeated along 64 lanes
    for i in range(64):
        tiled[i] = thresholds[i % channels]
    mask = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - channels)
    per_read = 64 // channels
    reads = (rows + per_read - 1) // per_read
    for block in nb.prange((reads + ROW_BLOCK - 1) // ROW_BLOCK):
        difference = np.empty(64, np.float32)
        for read in range(block * ROW_BLOCK, min(reads, (block + 1) * ROW_BLOCK)):
            first_row = read * per_read
            count = min(per_read, rows - first_row)
            values = flat[first_row * channels:(first_row + count) * channels]
            for i in range(values.size):
                difference[i] = values[i] - tiled[i]
            word = sign_bits64(difference, 0)  # lanes past the values are never used
            for q in range(count):
                packed[first_row + q, 0] = (word >> np.uint64(q * channels)) & mask


@nb.njit(parallel=True, cache=True)
def pack_acc_below(acc, thresholds, flip, groups, packed):
    """Like :func:`pack_below` for int32 ``acc``: bit = (acc < thresholds[c]) XOR flip[c]."""
    rows, channels = acc.shape
    per_group = channels // groups
    words = (per_group + 63) // 64
    for r in nb.prange(rows):
        for g in range(groups):
            for j in range(words):
                start = g * per_group + 64 * j
                stop = min(start + 64, (g + 1) * per_group)
                word = np.uint64(0)
                for c in range(start, stop):
                    bit = (acc[r, c] < thresholds[c]) != flip[c]
                    word |= np.uint64(bit) << np.uint64(c - start)
                packed[r, g * words + j] = word


@nb.njit(parallel=True, cache=True, error_model="numpy")
def run_stages(x, codes, first_rows, params, other, other_div, out):
    """out[r] = the steps ``codes`` applied in order to x[r] (float32; see numbnn.inference.ops.STAGES).

    Step s reads parameter rows params[first_rows[s]:] (one value per channel). The *_INPUT steps read
    ``other`` [R, Co]: row r // other_div, channel c % Co (a residual of the same shape, a repeated
    residual, or a per-image gate). Arithmetic is float32 throughout, step by step, as in the float model.
    Rows go in blocks of ROW_BLOCK that stay in L1 while every step sweeps them.
    """
    rows, channels = x.shape
    for block in nb.prange((rows + ROW_BLOCK - 1) // ROW_BLOCK):
        first, last = block * ROW_BLOCK, min(rows, (block + 1) * ROW_BLOCK)
        for r in range(first, last):
            for c in range(channels):
                out[r, c] = x[r, c]
        apply_steps(out, first, last, codes, first_rows, params, other, other_div)


@nb.njit(parallel=True, cache=True, error_model="numpy")
def run_stages_gathered(x, index, fill, codes, first_rows, params, other, other_div, out):
    """:func:`run_stages` on a rearranged view of x [N, S]: out row r, channel c starts from
    x[image, index[(r % rows) * C + c]] (or fill[-1 - index] for padding), rows = index.size / C."""
    channels = out.shape[1]
    rows = index.size // channels
    total = out.shape[0]
    for block in nb.prange((total + ROW_BLOCK - 1) // ROW_BLOCK):
        first, last = block * ROW_BLOCK, min(total, (block + 1) * ROW_BLOCK)
        for r in range(first, last):
            b, row = r // rows, r % rows
            for c in range(channels):
                source = index[row * channels + c]
                out[r, c] = x[b, source] if source >= 0 else fill[-1 - source]
        apply_steps(out, first, last, codes, first_rows, params, other, other_div)


@nb.njit(cache=True, error_model="numpy")  # IEEE division: x / 0 is inf, as in numpy
def apply_steps(out, first, last, codes, first_rows, params, other, other_div):
    """The steps applied in place to rows first .. last-1 of float32 ``out`` (see :func:`run_stages`).

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
                    out[r, c] = out[r, c] * params[p, c]
        elif code == ADD:
            for r in range(first, last):
                for c in range(channels):
                    out[r, c] = out[r, c] + params[p, c]
        elif code == SUB:
            for r in range(first, last):
                for c in range(channels):
                    out[r, c] = out[r, c] - params[p, c]
        elif code == RSUB:
            for r in range(first, last):
                for c in range(channels):
                    out[r, c] = params[p, c] - out[r, c]
        elif code == DIV:
            for r in range(first, last):
                for c in range(channels):
                    out[r, c] = out[r, c] / params[p, c]
        elif code == RDIV:
            for r in range(first, last):
                for c in range(channels):
                    out[r, c] = params[p, c] / out[r, c]
        elif code == AFFINE:
            for r in range(first, last):
                for c in range(channels):
                    out[r, c] = out[r, c] * params[p, c] + params[p + 1, c]
        elif code == DPRELU:  # u = y - shift_x; (pos if u >= 0 else neg) * u - shift_y
            for r in range(first, last):
                for c in range(channels):
                    u = out[r, c] - params[p, c]
                    pos, neg = params[p + 1, c], params[p + 2, c]  # both loaded: a select, not a branch
                    out[r, c] = (pos if u >= 0 else neg) * u - params[p + 3, c]
        elif code == RELU:
            for r in range(first, last):
                for c in range(channels):
                    out[r, c] = out[r, c] * np.float32(out[r, c] > 0)
        elif code == HARD_SIGMOID:
            for r in range(first, last):
                for c in range(channels):
                    v = min(max(out[r, c] + np.float32(3.0), np.float32(0.0)), np.float32(6.0))
                    out[r, c] = v / np.float32(6.0)
        elif code == FAKE_QUANT:  # lo, hi, step
            for r in range(first, last):
                for c in range(channels):
                    v = min(max(out[r, c], params[p, c]), params[p + 1, c])
                    out[r, c] = np.rint(v / params[p + 2, c]) * params[p + 2, c]
        elif code == SIGN:
            for r in range(first, last):
                for c in range(channels):
                    out[r, c] = np.float32(-1.0) if out[r, c] < 0 else np.float32(1.0)
        elif code == NEG:
            for r in range(first, last):
                for c in range(channels):
                    out[r, c] = -out[r, c]
        elif code == ADD_INPUT:  # the second input, its channels repeated to fill ours
            for r in range(first, last):
                row = other[r // other_div]
                for base in range(0, channels, width):
                    part = out[r, base:base + width]
                    for c in range(width):
                        part[c] = part[c] + row[c]
        elif code == SUB_INPUT:
            for r in range(first, last):
                row = other[r // other_div]
                for base in range(0, channels, width):
                    part = out[r, base:base + width]
                    for c in range(width):
                        part[c] = part[c] - row[c]
        elif code == RSUB_INPUT:
            for r in range(first, last):
                row = other[r // other_div]
                for base in range(0, channels, width):
                    part = out[r, base:base + width]
                    for c in range(width):
                        part[c] = row[c] - part[c]
        elif code == MUL_INPUT:
            for r in range(first, last):
                row = other[r // other_div]
                for base in range(0, channels, width):
                    part = out[r, base:base + width]
                    for c in range(width):
                        part[c] = part[c] * row[c]


@nb.njit(cache=True)
def is_block_epilogue(codes):
    """True for the steps [mul, affine, add_input, dprelu]: a ReActNet block's scale, batch norm,
    residual and RPReLU after its binary convolution."""
    return codes.size == 4 and codes[0] == MUL and codes[1] == AFFINE and codes[2] == ADD_INPUT and codes[3] == DPRELU


@nb.njit(cache=True, error_model="numpy")
def block_epilogue(acc, first, last, params, first_rows, other, other_div, out):
    """out[r] = dprelu(float32(acc[r - first]) * scale * bn_scale + bn_shift + residual) for rows first ..
    last-1: the steps [mul, affine, add_input, dprelu] of :func:`apply_steps` with the same float32
    operations in the same order, but in one vectorised pass per row instead of a pass per step (the
    int32 block ``acc`` [rows, >= C] holds row first at 0; ``other`` as in :func:`run_stages`)."""
    channels = out.shape[1]
    width = other.shape[1]
    p, q, s = first_rows[0], first_rows[1], first_rows[3]
    residual = np.empty(channels, np.float32)  # the residual row, its channels repeated to fill ours
    for r in range(first, last):
        row = other[r // other_div]
        for base in range(0, channels, width):
            part = residual[base:base + width]
            for c in range(width):
                part[c] = row[c]
        a = acc[r - first]
        y = out[r]
        for c in range(channels):
            v = np.float32(a[c]) * params[p, c]
            v = v * params[q, c] + params[q + 1, c]
            u = (v + residual[c]) - params[s, c]
            pos, neg = params[s + 1, c], params[s + 2, c]  # both loaded: a select, not a branch
            y[c] = (pos if u >= 0 else neg) * u - params[s + 3, c]


@nb.njit(parallel=True, cache=True)
def avg_pool(x, kh, kw, sh, sw, top, left, ho, wo, tiled, out):
    """Mean of each window's real pixels, summed in the float model's order.

    ``tiled`` (windows tile x exactly): numpy's mean over the window axes, x[first tap] + the others in
    row-major order, divided by KH*KW. Otherwise the float model's tap loop: 0 + every tap in row-major
    order (a padding tap adds 0.0), divided by the number of real pixels.
    """
    n, h, w, channels = x.shape
    for task in nb.prange(n * ho):
        b, oy = task // ho, task % ho
        for ox in range(wo):
            y0, x0 = oy * sh - top, ox * sw - left
            total = out[b, oy, ox]
            for c in range(channels):
                total[c] = x[b, y0, x0, c] if tiled else np.float32(0.0)
            for i in range(kh):
                for k in range(kw):
                    if tiled and i == 0 and k == 0:
                        continue
                    iy, ix = y0 + i, x0 + k
                    if 0 <= iy < h and 0 <= ix < w:
                        for c in range(channels):
                            total[c] = total[c] + x[b, iy, ix, c]
                    else:
                        for c in range(channels):
                            total[c] = total[c] + np.float32(0.0)
            count = np.float32((min(y0 + kh, h) - max(y0, 0)) * (min(x0 + kw, w) - max(x0, 0)))
            for c in range(channels):
                total[c] = total[c] / count


@nb.njit(parallel=True, cache=True)
def spatial_mean(x, out):
    """out[n, c] = mean over (h, w) of x[n, h, w, c], as numpy's mean: x[n, 0, 0] + the rest row-major."""
    n, h, w, channels = x.shape
    count = np.float32(h * w)
    for b in nb.prange(n):
        for c in range(channels):
            out[b, c] = x[b, 0, 0, c]
        for i in range(h):
            for k in range(w):
                if i == 0 and k == 0:
                    continue
                for c in range(channels):
                    out[b, c] = out[b, c] + x[b, i, k, c]
        for c in range(channels):
            out[b, c] = out[b, c] / count


@nb.njit(parallel=True, cache=True)
def packed_im2col(x, first_word, words, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols):
    """cols[(n*Ho + oy)*Wo + ox] = the packed receptive field of output pixel (n, oy, ox): for each tap
    (kh, kw) in row-major order, words first_word .. first_word+words-1 of the input pixel it reads, or
    zero words (+1 values) for a tap in the padding."""
    n, h, w, _ = x.shape
    for task in nb.prange(n * ho):
        b, oy = task // ho, task % ho
        for ox in range(wo):
            row = task * wo + ox
            for i in range(kh):
                iy = oy * sh - ph + i * dh
                for j in range(kw):
                    ix = ox * sw - pw + j * dw
                    base = (i * kw + j) * words
                    if 0 <= iy < h and 0 <= ix < w:
                        for t in range(words):
                            cols[row, base + t] = x[b, iy, ix, first_word + t]
                    else:
                        for t in range(words):
                            cols[row, base + t] = np.uint64(0)


@nb.njit(parallel=True, cache=True)
def add_border_correction(acc, pixels, correction):
    """acc [N, Ho*Wo, O] += correction[p] at pixel pixels[p] of every image (the border pixels only)."""
    n = acc.shape[0]
    count, channels = correction.shape
    for task in nb.prange(n * count):
        b, p = task // count, task % count
        pixel = pixels[p]
        for o in range(channels):
            acc[b, pixel, o] += correction[p, o]


CONV_BLOCK = 16 * TILE_ROWS  # output pixels per task of conv_steps


@nb.njit(parallel=True, cache=True, error_model="numpy")
def conv_steps(x, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, tap_bits, panels, k, border_row, correction,
               codes, first_rows, params, other, other_div, out, pack_thresholds, pack_groups, packed):
    """A binary convolution and the per-channel steps after it, one block of output pixels at a time.

    Per block of CONV_BLOCK output pixels and per group g: the pixels' packed receptive fields in the
    group's words (as :func:`packed_im2col`; an ungrouped 1x1 convolution reads full blocks of x's rows
    in place), times the group's weight panels ``panels[g]`` tile by tile (``tile_dot``: k - 2 *
    popcount of XOR, the weights' tails balanced as in numbnn.inference.ops.BinaryConv); then the
    padding correction of border pixels (``border_row[pixel]`` >= 0 indexes ``correction``) and the
    steps (:func:`block_epilogue` for a ReActNet block, else :func:`apply_steps`) into ``out`` [N*Ho*Wo, O].
    The int32 results never leave the cache. With ``packed`` words per row (``packed.shape[1]`` > 0) the
    block's float rows are also packed against ``pack_thresholds`` in ``pack_groups`` groups while they
    are still in the cache (:func:`pack_rows_below`, the next RSign's bits): no second pass over ``out``.
    ``tap_bits`` > 0 (a group's channel count, a divisor of 64): taps are packed densely, 64 / tap_bits
    taps per word (:func:`_gather_dense`), so few channels do not leave most of every word empty.
    """
    n, h, w, all_words = x.shape
    groups, n_panels = panels.shape[0], panels.shape[1]
    words = all_words // groups
    pixels = ho * wo
    rows = n * pixels
    out_channels = out.shape[1]
    per_group = out_channels // groups
    padded = n_panels * TILE_COLS  # a group's columns in the tile results
    flat = x.reshape(n * h * w, all_words)
    pointwise = kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0 and groups == 1
    for block in nb.prange((rows + CONV_BLOCK - 1) // CONV_BLOCK):
        first, last = block * CONV_BLOCK, min(rows, (block + 1) * CONV_BLOCK)
        tiles = np.empty((CONV_BLOCK, groups * padded), np.int32)
        difference = np.zeros((CONV_BLOCK, out_channels + 64), np.float32)  # pack_rows_below's scratch
        for g in range(groups):
            if pointwise and last - first == CONV_BLOCK:
                source, row0 = flat, first
            else:
                source, row0 = np.zeros((CONV_BLOCK, panels.shape[2]), np.uint64), 0
                if tap_bits:
                    _gather_dense(x, g, tap_bits, first, last, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, source)
                else:
                    _gather(x, g * words, words, first, last, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, source)
            for panel in range(n_panels):
                for tile in range(0, last - first, TILE_ROWS):
                    tile_dot(source, row0 + tile, panels[g], panel, k, tiles, tile, g * padded + panel * TILE_COLS)
        acc = tiles
        if groups > 1 and padded != per_group:  # drop each group's padding columns
            acc = np.empty((CONV_BLOCK, out_channels), np.int32)
            for r in range(last - first):
                for g in range(groups):
                    for o in range(per_group):
                        acc[r, g * per_group + o] = tiles[r, g * padded + o]
        for r in range(first, last):
            row = border_row[r % pixels]
            if row >= 0:
                for o in range(out_channels):
                    acc[r - first, o] += correction[row, o]
        if is_block_epilogue(codes):
            block_epilogue(acc, first, last, params, first_rows, other, other_div, out)
        else:
            for r in range(first, last):
                for o in range(out_channels):
                    out[r, o] = np.float32(acc[r - first, o])
            apply_steps(out, first, last, codes, first_rows, params, other, other_div)
        if packed.shape[1] > 0:
            pack_rows_below(out, first, last, pack_thresholds, pack_groups, difference, packed)


@nb.njit(cache=True)
def _gather(x, first_word, words, first, last, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols):
    """cols[r - first] = packed receptive field of output pixel r in words first_word .. +words-1 of each
    input pixel (zero words stay for padding taps)."""
    n, h, w, all_words = x.shape
    flat = x.reshape(-1)
    b, pixel = first // (ho * wo), first % (ho * wo)
    oy, ox = pixel // wo, pixel % wo
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
        ox += 1
        if ox == wo:
            ox, oy = 0, oy + 1
            if oy == ho:
                oy, b = 0, b + 1


@nb.njit(cache=True)
def _gather_dense(x, group, tap_bits, first, last, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols):
    """Like :func:`_gather` for one-word groups of ``tap_bits`` channels: tap t's bits go to word
    t // (64 / tap_bits) at bit offset tap_bits * (t % (64 / tap_bits)) (their tails are 0, so OR is exact).
    Word and offset advance tap by tap: two integer divisions per tap cost more than the rest of the loop."""
    n, h, w, all_words = x.shape
    flat = x.reshape(-1)
    per_word = 64 // tap_bits
    b, pixel = first // (ho * wo), first % (ho * wo)
    oy, ox = pixel // wo, pixel % wo
    for r in range(first, last):
        row = cols[r - first]
        y0, x0 = oy * sh - ph, ox * sw - pw
        word, slot = 0, 0
        for i in range(kh):
            iy = y0 + i * dh
            line = (b * h + iy) * w
            for j in range(kw):
                ix = x0 + j * dw
                if 0 <= iy < h and 0 <= ix < w:
                    row[word] |= flat[(line + ix) * all_words + group] << np.uint64(tap_bits * slot)
                slot += 1
                if slot == per_word:
                    word, slot = word + 1, 0
        ox += 1
        if ox == wo:
            ox, oy = 0, oy + 1
            if oy == ho:
                oy, b = 0, b + 1


@nb.njit(parallel=True, cache=True)
def depthwise_conv(x, taps, sh, sw, ph, pw, dh, dw, ho, wo, out):
    """out[n, y, x, c*m + j] = 0 + sum over taps (i, k) in row-major order of x[n, y*sh - ph + i*dh,
    x*sw - pw + k*dw, c] * taps[c, j, i, k], each product and sum rounded to float32 (a padding tap
    multiplies 0.0): the float model's shift-and-add order. ``taps`` [C, m, KH, KW]."""
    n, h, w, channels = x.shape
    mult, kh, kw = taps.shape[1], taps.shape[2], taps.shape[3]
    for task in nb.prange(n * ho):
        b, oy = task // ho, task % ho
        for ox in range(wo):
            y = out[b, oy, ox]
            for o in range(channels * mult):
                y[o] = np.float32(0.0)
            for i in range(kh):
                iy = oy * sh - ph + i * dh
                for k in range(kw):
                    ix = ox * sw - pw + k * dw
                    inside = 0 <= iy < h and 0 <= ix < w
                    for c in range(channels):
                        v = x[b, iy, ix, c] if inside else np.float32(0.0)
                        for j in range(mult):
                            y[c * mult + j] = y[c * mult + j] + v * taps[c, j, i, k]


@nb.njit(parallel=True, cache=True)
def mean_last_axis(x, out):
    """out[r] = (x[r, 0] + x[r, 1] + ...) / n for rows of fewer than 8 values: numpy's order there."""
    rows, count = x.shape
    divisor = np.float32(count)
    for r in nb.prange(rows):
        total = x[r, 0]
        for i in range(1, count):
            total = total + x[r, i]
        out[r] = total / divisor


@nb.njit(parallel=True, cache=True)
def gather_pack(x, index, fill, thresholds, groups, packed):
    """Like :func:`pack_below` for a rearranged view of x: element e of an image's rearranged slice is
    x_image.flat[index[e]], or fill[-1 - index[e]] where index is negative (a padding constant).
    ``x`` [N, S] (one flattened image per row), ``packed`` [N * rows, words] with rows * C = index.size."""
    n = x.shape[0]
    channels = thresholds.size
    rows = index.size // channels
    per_group = channels // groups
    words = (per_group + 63) // 64
    tasks = n * rows
    for block in nb.prange((tasks + ROW_BLOCK - 1) // ROW_BLOCK):
        difference = np.zeros(channels + 64, np.float32)
        for task in range(block * ROW_BLOCK, min(tasks, (block + 1) * ROW_BLOCK)):
            b, row = task // rows, task % rows
            for c in range(channels):
                source = index[row * channels + c]
                value = x[b, source] if source >= 0 else fill[-1 - source]
                difference[c] = value - thresholds[c]
            _pack_signs_row(difference, groups, words, per_group, packed[task])
