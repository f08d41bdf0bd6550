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
    taps = np.ascontiguousarray(w.reshape(channels, w.shape[0] // channels, g.kh, g.kw))
    out = np.empty((x.shape[0], g.ho, g.wo, w.shape[0]), x.dtype)
    _depthwise(np.ascontiguousarray(x), taps, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, out)
    return out


@nb.njit([f"void({t}[:, :, :, ::1], {t}[:, :, :, ::1], int64, int64, int64, int64, int64, int64, {t}[:, :, :, ::1])"
          for t in ("float32", "float64")], parallel=True, cache=True)
def _depthwise(x, taps, sh, sw, ph, pw, dh, dw, out):
    """``taps`` [C, m, KH, KW]; ``out`` [N, Ho, Wo, C*m]; one task per output row (n, oy)."""
    n, h, w, channels = x.shape
    mult, kh, kw = taps.shape[1], taps.shape[2], taps.shape[3]
    ho, wo = out.shape[1], out.shape[2]
    zero = np.zeros(1, x.dtype)[0]  # 0.0 in x's type: a float32 product stays float32
    for task in nb.prange(n * ho):
        b, oy = task // ho, task % ho
        for ox in range(wo):
            y = out[b, oy, ox]
            for o in range(channels * mult):
                y[o] = zero
            for i in range(kh):
                iy = oy * sh - ph + i * dh
                for k in range(kw):
                    ix = ox * sw - pw + k * dw
                    inside = 0 <= iy < h and 0 <= ix < w
                    for c in range(channels):
                        v = x[b, iy, ix, c] if inside else zero
                        for j in range(mult):
                            y[c * mult + j] = y[c * mult + j] + v * taps[c, j, i, k]
