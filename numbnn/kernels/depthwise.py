"""Depthwise float convolution (one input channel per group, channel multiplier m), NHWC x, OHWI w.

    out[n, y, x, c*m + j] = sum over taps (i, k) in row-major order of
                            x[n, y*sh - ph + i*dh, x*sw - pw + k*dw, c] * w[c*m + j, i, k, 0]

summed from 0.0 tap by tap, each product and each sum rounded to the input's float type, a padding
tap multiplying 0.0: the shift-and-add order (one multiply-add per tap over every pixel), so the
result does not depend on the batch size. The float model and the packed runtime both call
:func:`depthwise_conv2d`, so they agree bit for bit by construction.
"""

import numba as nb
import numpy as np

from numbnn.errors import InputError
from numbnn.kernels._checks import require_array
from numbnn.kernels.geometry import conv_geometry

_FLOATS = (np.float32, np.float64)


def depthwise_conv2d(x, w, stride=1, padding=0, dilation=1) -> np.ndarray:
    """[N, Ho, Wo, C*m] depthwise convolution of float ``x`` [N, H, W, C] with ``w`` [C*m, KH, KW, 1]
    (same dtype); ``stride``, ``padding`` (zeros), ``dilation`` ints or (h, w) pairs."""
    x = require_array(x, "x", _FLOATS, ndim=4)
    w = require_array(w, "w", (x.dtype.type,), ndim=4)
    channels = x.shape[3]
    if w.shape[3] != 1 or w.shape[0] % channels or w.shape[0] == 0:
        raise InputError(f"w must be [C*m, KH, KW, 1] for {channels} input channels, got {w.shape}")
    g = conv_geometry(x.shape[1], x.shape[2], w.shape[1:3], stride, padding, dilation)
    mult = w.shape[0] // channels
    # [KH, KW, Wo*C*m]: tap (i, k)'s weights, repeated for every output pixel of a row
    taps = np.ascontiguousarray(np.tile(w[:, :, :, 0].transpose(1, 2, 0), (1, 1, g.wo)))
    # output channel c*m + j reads input channel c: with m copies of every channel in place, each output
    # channel has its own input channel and the loop over them vectorises (the same products, the same sums)
    x = np.repeat(x, mult, axis=3) if mult > 1 else np.ascontiguousarray(x)
    out = np.empty((x.shape[0], g.ho, g.wo, w.shape[0]), x.dtype)
    _depthwise(x, taps, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, out)
    return out


@nb.njit(inline="always")
def _add_products_of(y, values, weights):
    """y += values * weights, element by element (all of one length)."""
    for e in range(y.size):
        y[e] = y[e] + values[e] * weights[e]


@nb.njit(inline="always")
def _add_products(y, weights, value):
    """y += value * weights: a padding tap adds 0.0 times its weight, as the float convolution does."""
    for e in range(y.size):
        y[e] = y[e] + value * weights[e]


@nb.njit([f"void({t}[:, :, :, ::1], {t}[:, :, ::1], int64, int64, int64, int64, int64, int64, {t}[:, :, :, ::1])"
          for t in ("float32", "float64")], parallel=True, cache=True)
def _depthwise(x, taps, sh, sw, ph, pw, dh, dw, out):
    """``x`` [N, H, W, C'] (each input channel repeated m times, C' = C*m), ``taps`` [KH, KW, Wo*C'] (a
    tap's C' weights once per output pixel of a row), ``out`` [N, Ho, Wo, C']; one task per output row.

    Each tap in row-major order adds its products to the whole output row before the next tap: every
    sum still runs tap by tap, and with stride 1 the inside of the row is one contiguous run of
    Wo*C' values, so the loop vectorises even for few channels (a loop over C' = 32 per pixel stayed
    scalar; the former weight layout [C, m, KH, KW] ran at ~1 G multiply-adds/s)."""
    n, h, w, channels = x.shape
    kh, kw = taps.shape[0], taps.shape[1]
    ho, wo = out.shape[1], out.shape[2]
    width = wo * channels
    zero = np.zeros(1, x.dtype)[0]  # 0.0 in x's type: a float32 product stays float32
    for task in nb.prange(n * ho):
        b, oy = task // ho, task % ho
        y = out[b, oy].reshape(width)
        for e in range(width):
            y[e] = zero
        for i in range(kh):
            iy = oy * sh - ph + i * dh
            for k in range(kw):
                t = taps[i, k]
                if iy < 0 or iy >= h:
                    lo = hi = wo  # the whole row reads the padding
                elif sw == 1:  # output pixels lo .. hi-1 read inside the image, the rest the padding
                    lo = min(wo, max(0, pw - k * dw))
                    hi = max(lo, min(wo, w + pw - k * dw))
                else:
                    lo = hi = -1  # pixel by pixel below
                if lo >= 0:
                    # slices indexed from 0: an index with a run-time offset pays Numba's negative-index
                    # wraparound test per element, which stops the loop vectorising (8x slower)
                    _add_products(y[: lo * channels], t[: lo * channels], zero)  # padding: 0.0 times the weight
                    start = (lo + k * dw - pw) * channels  # ix * C' of output pixel lo
                    inside = x[b, min(max(iy, 0), h - 1)].reshape(w * channels)[start : start + (hi - lo) * channels]
                    _add_products_of(y[lo * channels : hi * channels], inside, t[lo * channels : hi * channels])
                    _add_products(y[hi * channels :], t[hi * channels :], zero)
                    continue
                for ox in range(wo):
                    ix = ox * sw - pw + k * dw
                    pixel = slice(ox * channels, (ox + 1) * channels)
                    if 0 <= ix < w:
                        _add_products_of(y[pixel], x[b, iy, ix], t[pixel])
                    else:
                        _add_products(y[pixel], t[pixel], zero)
