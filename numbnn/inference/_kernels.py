"""Numba loops of the packed runtime that the general kernels do not have.

- :func:`pack_below`: sign packing against per-channel float thresholds (RSign / LearnableBias folded
  into the packing), with per-group word alignment.
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
    per_group = channels // groups
    words = (per_group + 63) // 64
    n_blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
    for block in nb.prange(n_blocks):
        difference = np.zeros(channels + 64, np.float32)  # room for a full 64-lane read at the tail
        for r in range(block * ROW_BLOCK, min(rows, (block + 1) * ROW_BLOCK)):
            for c in range(channels):
                difference[c] = x[r, c] - thresholds[c]
            for g in range(groups):
                for j in range(words):
                    start = g * per_group + 64 * j
                    count = min(64, per_group - 64 * j)
                    word = sign_bits64(difference, start)
                    if count < 64:
                        word &= (np.uint64(1) << np.uint64(count)) - np.uint64(1)
                    packed[r, g * words + j] = word


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


@nb.njit(parallel=True, cache=True)
def run_stages(x, codes, first_rows, params, other, other_div, out):
    """out[r] = the steps ``codes`` applied in order to float32(x[r]) (see numbnn.inference.ops.STAGES).

    Step s reads parameter rows params[first_rows[s]:] (one value per channel). The *_INPUT steps read
    ``other`` [R, Co]: row r // other_div, channel c % Co (a residual of the same shape, a repeated
    residual, or a per-image gate). Arithmetic is float32 throughout, step by step, as in the float model.
    Rows go in blocks of ROW_BLOCK, each step over a whole block, so the step dispatch is amortised.
    """
    rows, channels = x.shape
    n_blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
    for block in nb.prange(n_blocks):
        first, last = block * ROW_BLOCK, min(rows, (block + 1) * ROW_BLOCK)
        for r in range(first, last):
            for c in range(channels):
                out[r, c] = np.float32(x[r, c])
        for s in range(codes.size):
            for r in range(first, last):
                _step(codes[s], out[r], params, first_rows[s], other[r // other_div])


@nb.njit(inline="always")
def _step(code, y, params, p, o):
    """One step on one row ``y`` (in place)."""
    channels = y.size
    if code == MUL:
        for c in range(channels):
            y[c] = y[c] * params[p, c]
    elif code == ADD:
        for c in range(channels):
            y[c] = y[c] + params[p, c]
    elif code == SUB:
        for c in range(channels):
            y[c] = y[c] - params[p, c]
    elif code == RSUB:
        for c in range(channels):
            y[c] = params[p, c] - y[c]
    elif code == DIV:
        for c in range(channels):
            y[c] = y[c] / params[p, c]
    elif code == RDIV:
        for c in range(channels):
            y[c] = params[p, c] / y[c]
    elif code == AFFINE:
        for c in range(channels):
            y[c] = y[c] * params[p, c] + params[p + 1, c]
    elif code == DPRELU:  # u = y - shift_x; (pos if u >= 0 else neg) * u - shift_y
        for c in range(channels):
            u = y[c] - params[p, c]
            pos, neg = params[p + 1, c], params[p + 2, c]  # both loaded: a select, not a branch
            y[c] = (pos if u >= 0 else neg) * u - params[p + 3, c]
    elif code == RELU:
        for c in range(channels):
            y[c] = y[c] * np.float32(y[c] > 0)
    elif code == HARD_SIGMOID:
        for c in range(channels):
            v = y[c] + np.float32(3.0)
            v = min(max(v, np.float32(0.0)), np.float32(6.0))
            y[c] = v / np.float32(6.0)
    elif code == FAKE_QUANT:  # lo, hi, step
        for c in range(channels):
            v = min(max(y[c], params[p, c]), params[p + 1, c])
            y[c] = np.rint(v / params[p + 2, c]) * params[p + 2, c]
    elif code == SIGN:
        for c in range(channels):
            y[c] = np.float32(-1.0) if y[c] < 0 else np.float32(1.0)
    elif code == NEG:
        for c in range(channels):
            y[c] = -y[c]
    else:  # the second input, its channels repeated to fill ours
        width = o.size
        for base in range(0, channels, width):
            _input_step(code, y[base:base + width], o)


@nb.njit(inline="always")
def _input_step(code, y, o):
    if code == ADD_INPUT:
        for c in range(y.size):
            y[c] = y[c] + o[c]
    elif code == SUB_INPUT:
        for c in range(y.size):
            y[c] = y[c] - o[c]
    elif code == RSUB_INPUT:
        for c in range(y.size):
            y[c] = o[c] - y[c]
    else:
        for c in range(y.size):
            y[c] = y[c] * o[c]
