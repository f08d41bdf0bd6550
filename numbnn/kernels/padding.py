"""The padding correction of binary convolutions: one table per input size, added to border pixels.

The convolution kernels fill a padding tap with zero words, i.e. +1 in every channel, so every
receptive field is a full bit vector and one popcount pass serves interior and border pixels alike.
Where the padding value p was due, a padding tap of output channel o therefore counted
wsum[o, tap] = sum_c w[o, tap, c] = C_g - 2*popcount(w[o, tap]) instead of p * wsum[o, tap]; the
correction adds (p - 1) * wsum[o, tap] per padding tap: 0 for p = +1 (LCE's one-padding), -wsum for
p = 0 (zero padding, as a float convolution) and -2*wsum for p = -1.

Which taps of output pixel (oy, ox) fall in the padding depends on (oy, ox) only, not on the image,
so :func:`border_corrections` sums them once per input size into one row per border pixel;
:func:`add_border_corrections` adds a block of pixels' rows to their accumulators.
"""

import numba as nb
import numpy as np

from numbnn.kernels.intrinsics import popcount


@nb.njit(cache=True)
def tap_weight_sums(w, channels):
    """wsum[o, tap] = C_g - 2*popcount(w[o, tap]): the sum of a tap's +1/-1 weights (``w`` OHWI words)."""
    out_channels, kh, kw, n_words = w.shape
    wsum = np.empty((out_channels, kh * kw), dtype=np.int64)
    for o in range(out_channels):
        for i in range(kh):
            for j in range(kw):
                ones = 0
                for t in range(n_words):
                    ones += popcount(w[o, i, j, t])
                wsum[o, i * kw + j] = channels - 2 * ones
    return wsum


@nb.njit(cache=True)
def border_corrections(h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, wsum, pad_value):
    """(border_row int64 [Ho*Wo], correction int32 [border pixels, O]): border_row[oy*Wo + ox] is the
    pixel's row of ``correction`` (-1 for a pixel without padding taps), that row the sum of
    (pad_value - 1) * wsum[:, tap] over its padding taps."""
    out_channels = wsum.shape[0]
    border_row = np.full(ho * wo, -1, np.int64)
    count = 0
    if pad_value != 1:
        for oy in range(ho):
            for ox in range(wo):
                for i in range(kh):
                    for j in range(kw):
                        iy, ix = oy * sh - ph + i * dh, ox * sw - pw + j * dw
                        if border_row[oy * wo + ox] < 0 and (iy < 0 or iy >= h or ix < 0 or ix >= w):
                            border_row[oy * wo + ox] = count
                            count += 1
    correction = np.zeros((max(count, 1), out_channels), np.int32)
    for oy in range(ho):
        for ox in range(wo):
            row = border_row[oy * wo + ox]
            if row < 0:
                continue
            for i in range(kh):
                for j in range(kw):
                    iy, ix = oy * sh - ph + i * dh, ox * sw - pw + j * dw
                    if iy < 0 or iy >= h or ix < 0 or ix >= w:
                        for o in range(out_channels):
                            correction[row, o] += (pad_value - 1) * wsum[o, i * kw + j]
    return border_row, correction


@nb.njit(inline="always")
def add_border_corrections(acc, acc_row, first, count, pixels, border_row, correction, o_start, o_stop):
    """acc[acc_row + i, o] += correction of output pixel first + i (numbered over the batch, ``pixels``
    = Ho*Wo per image) for i < count and o_start <= o < o_stop."""
    for i in range(count):
        row = border_row[(first + i) % pixels]
        if row >= 0:
            for o in range(o_start, o_stop):
                acc[acc_row + i, o] += correction[row, o]
