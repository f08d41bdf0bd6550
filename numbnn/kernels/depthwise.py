"""Depthwise float convolution (one input channel per group, channel multiplier m), NHWC x, OHWI w.

    out[n, y, x, c*m + j] = sum over taps (i, k) in row-major order of
                            x[n, y*sh - ph + i*dh, x*sw - pw + k*dw, c] * w[c*m + j, i, k, 0]

summed from 0.0 tap by tap, each product and each sum rounded to the input's float type, a padding
tap multiplying 0.0: the shift-and-add order (one multiply-add per tap over every pixel), so the
result does not depend on the batch size. The float model and the packed runtime both call
:func:`depthwise_conv2d`, so they agree bit for bit by construction.

Three loop orders, one result. With a small multiplier (depthwise layers, m = 1-3) each input channel is
repeated m times (:func:`repeat_channels`) and a tap's products run along a whole output row
(:func:`_depthwise`), or for 3x3 kernels pixel by pixel (:func:`_depthwise_3x3`, the same sums in the same
order). With a wide one (m >= WIDE_MULTIPLIER: a stem convolution of a 1-channel image, one input channel
feeding all O outputs, which is this case with C = 1) the m outputs of one input value are a contiguous vector
already, so each output pixel adds its in-image taps' products to its own C*m sums (:func:`_depthwise_wide`),
with neither the repeated input nor the per-row weight copies; a tap in the padding is skipped there rather
than adding 0.0 times its weight, which gives the same sums (they start at +0.0 and never become -0.0, and x +
0.0 == x for every other x). Every zoo stem (C = 1, 3x3) has kernels of its own, :func:`_stem_3x3` and
:func:`_stem_3x3_weight_grads`: each output pixel reads its nine input values once and its m sums run tap by
tap in one expression, held in vector registers rather than passed through memory after every tap (2026-12-07
on the Intel Xeon, 2 threads, old and new in turn, medians: forward 0.49-0.57x, weight gradient 0.65-0.67x on
28x28 stems at strides 1 and 2).
"""

import numba as nb
import numpy as np

from numbnn.errors import InputError
from numbnn.kernels._checks import require_array
from numbnn.kernels.geometry import conv_geometry
from numbnn.kernels.steps import ADD_INPUT, NO_OTHER, PROGRAM, ROWS, apply_steps
from numbnn.kernels.typed import typed_njit

_FLOATS = (np.float32, np.float64)

# From this multiplier on, the forward and the weight gradient run per output pixel (module docstring).
# A 1-channel 3x3 stem with 32 outputs on [128, 28, 28, 1] (2 threads, Intel Xeon, 2026-12-07, a probe timing
# each way in turn, minimums of 40 calls): forward 2.1 ms against 3.2-3.9 with the row kernel and 3.85 with
# im2col + BLAS; weight gradient 1.8-1.9 ms against 4.0-4.1 with im2col + BLAS (and 8 ms for the row
# kernel's gradients, which also compute dx).
WIDE_MULTIPLIER = 16


def depthwise_conv2d_grads(x, w, grad, stride=1, padding=0, dilation=1,
                           need_x: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """(dx [N, H, W, C], dw [C*m, KH, KW, 1]) of :func:`depthwise_conv2d` for the output gradient ``grad``
    [N, Ho, Wo, C*m] (all one float dtype): dx[n, iy, ix, c] = sum over the taps and outputs reading that
    input of grad * w, dw[c*m + j, tap] = sum over every output of grad * the input its tap read. dx is
    None when ``need_x`` is false (a stem's input image).

    One task per image adds each output pixel's gradient into the inputs its taps read (the image's own
    dx) and into a per-image dw partial (summed here), tap-major over contiguous channels as the forward
    does; sums run in a different order than a reference's, so results agree to rounding."""
    x = require_array(x, "x", _FLOATS, ndim=4)
    w = require_array(w, "w", (x.dtype.type,), ndim=4)
    grad = require_array(grad, "grad", (x.dtype.type,), ndim=4)
    channels = x.shape[3]
    if w.shape[3] != 1 or w.shape[0] % channels or w.shape[0] == 0:
        raise InputError(f"w must be [C*m, KH, KW, 1] for {channels} input channels, got {w.shape}")
    g = conv_geometry(x.shape[1], x.shape[2], w.shape[1:3], stride, padding, dilation)
    if grad.shape != (x.shape[0], g.ho, g.wo, w.shape[0]):
        raise InputError(f"grad must be {(x.shape[0], g.ho, g.wo, w.shape[0])}, got {grad.shape}")
    mult = w.shape[0] // channels
    if mult >= WIDE_MULTIPLIER:
        taps = _wide_taps(w, channels)
        dx = np.zeros(x.shape, x.dtype) if need_x else np.zeros((0, 0, 0, 0), x.dtype)
        dtaps = np.zeros((x.shape[0],) + taps.shape, x.dtype)
        if channels == 1 and g.kh == g.kw == 3 and not need_x:
            _stem_3x3_weight_grads(x, grad, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, dtaps)
        else:
            _depthwise_wide_grads(x, taps, grad, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, need_x, dx, dtaps)
        dw = dtaps.sum(axis=0).reshape(g.kh, g.kw, w.shape[0]).transpose(2, 0, 1)
        return (dx if need_x else None), np.ascontiguousarray(dw)[..., None]
    taps = np.ascontiguousarray(w[:, :, :, 0].transpose(1, 2, 0))  # [KH, KW, C*m]
    x = repeat_channels(x, mult)
    dx = np.zeros(x.shape, x.dtype)
    dtaps = np.zeros((x.shape[0], g.kh, g.kw, w.shape[0]), x.dtype)
    _depthwise_grads(x, taps, np.ascontiguousarray(grad), g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, dx, dtaps)
    if mult > 1:  # input channel c's gradient: its m copies' (strided slices; numpy's sum over a last
        copies = dx   # axis of m values is a slow strided reduction, as in pooling.mean)
        dx = copies[..., 0::mult].copy()
        for j in range(1, mult):
            dx += copies[..., j::mult]
    return (dx if need_x else None), np.ascontiguousarray(dtaps.sum(axis=0).transpose(2, 0, 1))[..., None]


def _wide_taps(w, channels: int) -> np.ndarray:
    """w [C*m, KH, KW, 1] as [KH, KW, C, m]: a tap's m weights per input channel, contiguous."""
    o, kh, kw, _ = w.shape
    return np.ascontiguousarray(w[:, :, :, 0].transpose(1, 2, 0)).reshape(kh, kw, channels, o // channels)


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
    if mult >= WIDE_MULTIPLIER:
        out = np.empty((x.shape[0], g.ho, g.wo, w.shape[0]), x.dtype)
        kernel = _stem_3x3 if channels == 1 and g.kh == g.kw == 3 else _depthwise_wide
        kernel(x, _wide_taps(w, channels), g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, out)
        return out
    # output channel c*m + j reads input channel c: with m copies of every channel in place, each output
    # channel has its own input channel and the loop over them vectorises (the same products, the same sums)
    x = repeat_channels(x, mult)
    out = np.empty((x.shape[0], g.ho, g.wo, w.shape[0]), x.dtype)
    if g.kh == g.kw == 3:
        taps = np.ascontiguousarray(w[:, :, :, 0].transpose(1, 2, 0))  # [3, 3, C*m]
        _depthwise_3x3(x, taps, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, out)
        return out
    # [KH, KW, Wo*C*m]: tap (i, k)'s weights, repeated for every output pixel of a row
    taps = np.ascontiguousarray(np.tile(w[:, :, :, 0].transpose(1, 2, 0), (1, 1, g.wo)))
    _depthwise(x, taps, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, out)
    return out


def repeat_channels(x: np.ndarray, m: int) -> np.ndarray:
    """x [N, H, W, C] with each channel repeated m times, [N, H, W, C*m] (np.repeat along the last axis, which
    copies one element at a time on one thread: 0.9 ms for PokeBNN's [256, 14, 14, 16] at m = 2)."""
    if m == 1:
        return np.ascontiguousarray(x)
    out = np.empty(x.shape[:3] + (x.shape[3] * m,), x.dtype)
    _repeat_channels(np.ascontiguousarray(x), m, out)
    return out


@typed_njit([f"void({t}[:, :, :, ::1], int64, {t}[:, :, :, ::1])" for t in ("float32", "float64")], parallel=True,
            cache=True)
def _repeat_channels(x, m, out):
    """out[..., c*m + j] = x[..., c]; one task per image row (m = 2, PokeBNN's, as a pair of stores LLVM vectorises)."""
    n, h, w, channels = x.shape
    for task in nb.prange(n * h):
        b, iy = task // h, task % h
        for ix in range(w):
            source, target = x[b, iy, ix], out[b, iy, ix]
            if m == 2:
                for c in range(channels):
                    v = source[c]
                    target[2 * c] = v
                    target[2 * c + 1] = v
            else:
                for c in range(channels):
                    for j in range(m):
                        target[c * m + j] = source[c]


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


@typed_njit([f"void({t}[:, :, :, ::1], {t}[:, :, ::1], int64, int64, int64, int64, int64, int64, {t}[:, :, :, ::1])"
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
                    # wraparound test per element, which stops the loop vectorising
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


@typed_njit([f"void({t}[:, :, :, ::1], {t}[:, :, ::1], {t}[:, :, :, ::1], int64, int64, int64, int64, int64, int64, "
          f"{t}[:, :, :, ::1], {t}[:, :, :, ::1])" for t in ("float32", "float64")], parallel=True, cache=True)
def _depthwise_grads(x, taps, grad, sh, sw, ph, pw, dh, dw, dx, dtaps):
    """``x``/``dx`` [N, H, W, C'] (channels repeated as in the forward), ``taps`` [KH, KW, C'], ``grad``
    [N, Ho, Wo, C'], ``dtaps`` [N, KH, KW, C'] per-image partials (zeroed); one task per image."""
    n, h, w, channels = x.shape
    kh, kw = taps.shape[0], taps.shape[1]
    ho, wo = grad.shape[1], grad.shape[2]
    for b in nb.prange(n):
        for oy in range(ho):
            for ox in range(wo):
                g = grad[b, oy, ox]
                for i in range(kh):
                    iy = oy * sh - ph + i * dh
                    if iy < 0 or iy >= h:
                        continue
                    for k in range(kw):
                        ix = ox * sw - pw + k * dw
                        if 0 <= ix < w:
                            _add_products_of(dx[b, iy, ix], g, taps[i, k])
                            _add_products_of(dtaps[b, i, k], g, x[b, iy, ix])


@nb.njit(inline="always")
def _tap_value(image, iy, ix, zero):
    """image[iy, ix, 0], or 0.0 in the padding."""
    if 0 <= iy < image.shape[0] and 0 <= ix < image.shape[1]:
        return image[iy, ix, 0]
    return zero


@nb.njit(inline="always")
def _nine_taps(image, oy, ox, sh, sw, ph, pw, dh, dw, zero):
    """The nine values a 3x3 window reads for output pixel (oy, ox) of the 1-channel ``image`` [H, W, 1],
    row-major, 0.0 in the padding."""
    y0, x0 = oy * sh - ph, ox * sw - pw
    y1, y2, x1, x2 = y0 + dh, y0 + 2 * dh, x0 + dw, x0 + 2 * dw
    return (_tap_value(image, y0, x0, zero), _tap_value(image, y0, x1, zero), _tap_value(image, y0, x2, zero),
            _tap_value(image, y1, x0, zero), _tap_value(image, y1, x1, zero), _tap_value(image, y1, x2, zero),
            _tap_value(image, y2, x0, zero), _tap_value(image, y2, x1, zero), _tap_value(image, y2, x2, zero))


@nb.njit(inline="always")
def _stem_row(image, oy, sh, sw, ph, pw, dh, dw, taps, zero, row):
    """row [Wo, m] = output row ``oy`` of the 3x3 convolution of the 1-channel ``image`` [H, W, 1] with
    ``taps`` [3, 3, 1, m]: each pixel reads its nine input values once and each of its m sums runs tap by
    tap in one expression, so the sums stay in vector registers instead of passing through memory after
    every tap (numbers in docs/performance.md). A padding tap adds 0.0 times its weight, as in
    :func:`_depthwise`."""
    t0, t1, t2 = taps[0, 0, 0], taps[0, 1, 0], taps[0, 2, 0]
    t3, t4, t5 = taps[1, 0, 0], taps[1, 1, 0], taps[1, 2, 0]
    t6, t7, t8 = taps[2, 0, 0], taps[2, 1, 0], taps[2, 2, 0]
    for ox in range(row.shape[0]):
        a0, a1, a2, a3, a4, a5, a6, a7, a8 = _nine_taps(image, oy, ox, sh, sw, ph, pw, dh, dw, zero)
        y = row[ox]
        for e in range(y.size):
            y[e] = ((((((((zero + a0 * t0[e]) + a1 * t1[e]) + a2 * t2[e]) + a3 * t3[e]) + a4 * t4[e])
                      + a5 * t5[e]) + a6 * t6[e]) + a7 * t7[e]) + a8 * t8[e]


@typed_njit([f"void({t}[:, :, :, ::1], {t}[:, :, :, ::1], int64, int64, int64, int64, int64, int64, {t}[:, :, :, ::1])"
          for t in ("float32", "float64")], parallel=True, cache=True)
def _stem_3x3(x, taps, sh, sw, ph, pw, dh, dw, out):
    """:func:`_depthwise_wide` for one input channel and 3x3 taps (``x`` [N, H, W, 1], ``taps`` [3, 3, 1, m]),
    the case of every zoo stem but PokeBNN's; one task per output row (:func:`_stem_row`)."""
    ho = out.shape[1]
    zero = np.zeros(1, x.dtype)[0]
    for task in nb.prange(x.shape[0] * ho):
        b, oy = task // ho, task % ho
        _stem_row(x[b], oy, sh, sw, ph, pw, dh, dw, taps, zero, out[b, oy])


@typed_njit(f"void(float32[:, :, :, ::1], float32[:, :, :, ::1], int64, int64, int64, int64, int64, int64, {PROGRAM}, "
            f"{ROWS}, float32[:, :, :, ::1])", parallel=True, cache=True)
def _stem_3x3_steps(x, taps, sh, sw, ph, pw, dh, dw, codes, first_rows, row_params, out):
    """:func:`_stem_3x3`, then per-channel float32 steps (:func:`numbnn.kernels.steps.apply_steps`, none reading
    a second input) on each output row while it is in the cache: the stem's batch norm without a pass of its
    own over the map. ``row_params`` [rows, Wo*m]: the steps' parameters repeated for every pixel of a row,
    so a row is one vector loop per step. The same operations in the same order as the two passes."""
    ho, wo, m = out.shape[1], out.shape[2], out.shape[3]
    zero = np.float32(0.0)
    for task in nb.prange(x.shape[0] * ho):
        b, oy = task // ho, task % ho
        row = out[b, oy]
        _stem_row(x[b], oy, sh, sw, ph, pw, dh, dw, taps, zero, row)
        apply_steps(row.reshape((1, wo * m)), 0, 0, 1, codes, first_rows, row_params, NO_OTHER, 1)


def is_stem_3x3(weight_shape) -> bool:
    """Weights [m, 3, 3, 1] with m >= WIDE_MULTIPLIER: a 3x3 conv of a 1-channel image, which :func:`_stem_3x3`
    computes (every zoo stem but PokeBNN's 2x2 one) and :func:`stem_conv2d_steps` fuses with its steps."""
    return tuple(weight_shape[1:]) == (3, 3, 1) and weight_shape[0] >= WIDE_MULTIPLIER


def stem_conv2d_steps(x, w, stride, padding, dilation, codes, first_rows, row_params) -> np.ndarray:
    """float32 [N, Ho, Wo, m]: :func:`depthwise_conv2d` of a 1-channel ``x`` [N, H, W, 1] with 3x3 ``w`` [m, 3, 3, 1]
    (m >= WIDE_MULTIPLIER), then the steps (``codes``/``first_rows``, parameters ``row_params`` [rows, Wo*m]
    repeated along an output row) on every output row, as :func:`numbnn.kernels.steps.run_stages` would apply
    them to the convolution's output: the same bits, one pass."""
    x = require_array(x, "x", (np.float32,), ndim=4)
    w = require_array(w, "w", (np.float32,), ndim=4)
    g = conv_geometry(x.shape[1], x.shape[2], w.shape[1:3], stride, padding, dilation)
    if x.shape[3] != 1 or not is_stem_3x3(w.shape):
        raise InputError(f"stem_conv2d_steps needs a 1-channel x and w [m >= {WIDE_MULTIPLIER}, 3, 3, 1], "
                         f"got {x.shape} and {w.shape}")
    if (np.asarray(codes) >= ADD_INPUT).any():
        raise InputError("stem_conv2d_steps: the steps may not read a second input")
    if row_params.shape[1] != g.wo * w.shape[0]:
        raise InputError(f"row_params must have Wo*m = {g.wo * w.shape[0]} columns, got {row_params.shape}")
    out = np.empty((x.shape[0], g.ho, g.wo, w.shape[0]), np.float32)
    _stem_3x3_steps(x, _wide_taps(w, 1), g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, codes, first_rows, row_params, out)
    return out


@typed_njit([f"void({t}[:, :, :, ::1], {t}[:, :, :, ::1], int64, int64, int64, int64, int64, int64, {t}[:, :, :, ::1])"
          for t in ("float32", "float64")], parallel=True, cache=True)
def _depthwise_wide(x, taps, sh, sw, ph, pw, dh, dw, out):
    """``x`` [N, H, W, C], ``taps`` [KH, KW, C, m], ``out`` [N, Ho, Wo, C*m]; one task per output row. Per
    output pixel, its sums start at 0.0 and each in-image tap (row-major) adds x * its m weights per input
    channel: the loop over the m contiguous outputs vectorises."""
    n, h, w, c = x.shape
    kh, kw, m = taps.shape[0], taps.shape[1], taps.shape[3]
    ho, wo = out.shape[1], out.shape[2]
    zero = np.zeros(1, x.dtype)[0]
    for task in nb.prange(n * ho):
        b, oy = task // ho, task % ho
        for ox in range(wo):
            y = out[b, oy, ox]
            for e in range(c * m):
                y[e] = zero
            for i in range(kh):
                iy = oy * sh - ph + i * dh
                if iy < 0 or iy >= h:
                    continue
                for k in range(kw):
                    ix = ox * sw - pw + k * dw
                    if ix < 0 or ix >= w:
                        continue
                    if c == 1:  # one input channel (PokeBNN's 2x2 patchify): the sums whole, no slice
                        _add_products(y, taps[i, k, 0], x[b, iy, ix, 0])
                        continue
                    for ci in range(c):
                        _add_products(y[ci * m: (ci + 1) * m], taps[i, k, ci], x[b, iy, ix, ci])


@typed_njit([f"void({t}[:, :, :, ::1], {t}[:, :, :, ::1], int64, int64, int64, int64, int64, int64, {t}[:, :, :, :, ::1])"
          for t in ("float32", "float64")], parallel=True, cache=True)
def _stem_3x3_weight_grads(x, grad, sh, sw, ph, pw, dh, dw, dtaps):
    """:func:`_depthwise_wide_grads` without dx for one input channel and 3x3 taps (``x`` [N, H, W, 1],
    ``grad`` [N, Ho, Wo, m], ``dtaps`` [N, 3, 3, 1, m] zeroed per-image partials); one task per image.
    Each output pixel reads its nine input values once and adds value * gradient to the nine tap rows in
    one loop over the m outputs, the same sums in the same order as the general kernel (a padding tap
    adds 0.0 times the gradient, which changes no sum)."""
    ho, wo = grad.shape[1], grad.shape[2]
    zero = np.zeros(1, x.dtype)[0]
    for b in nb.prange(x.shape[0]):
        image = x[b]
        d0, d1, d2 = dtaps[b, 0, 0, 0], dtaps[b, 0, 1, 0], dtaps[b, 0, 2, 0]
        d3, d4, d5 = dtaps[b, 1, 0, 0], dtaps[b, 1, 1, 0], dtaps[b, 1, 2, 0]
        d6, d7, d8 = dtaps[b, 2, 0, 0], dtaps[b, 2, 1, 0], dtaps[b, 2, 2, 0]
        for oy in range(ho):
            for ox in range(wo):
                a0, a1, a2, a3, a4, a5, a6, a7, a8 = _nine_taps(image, oy, ox, sh, sw, ph, pw, dh, dw, zero)
                g = grad[b, oy, ox]
                for e in range(g.size):
                    ge = g[e]
                    d0[e] += a0 * ge
                    d1[e] += a1 * ge
                    d2[e] += a2 * ge
                    d3[e] += a3 * ge
                    d4[e] += a4 * ge
                    d5[e] += a5 * ge
                    d6[e] += a6 * ge
                    d7[e] += a7 * ge
                    d8[e] += a8 * ge


@typed_njit([f"void({t}[:, :, :, ::1], {t}[:, :, ::1], int64, int64, int64, int64, int64, int64, {t}[:, :, :, ::1])"
          for t in ("float32", "float64")], parallel=True, cache=True)
def _depthwise_3x3(x, taps, sh, sw, ph, pw, dh, dw, out):
    """:func:`_depthwise` for 3x3 kernels, ``taps`` [3, 3, C'] (a tap's C' weights once); one task per output row.

    Each output pixel's C' sums run tap by tap, a kernel row of three taps per loop, instead of a pass over the
    output row per tap; pixels are indexed in the task's row views rather than viewed one by one. PokeBNN's
    grouped stem conv [256, 14, 14, 16] -> 32 (on the repeated input): 1.17-1.25 ms against 1.35-2.0 ms row by
    row at 2 threads, 1.7-1.9 against 2.2-2.5 at one (the two in turn in one process, Zen 4, 2026-12-07). Both
    stay several times slower than their arithmetic and memory traffic allow; loops of 32 channels, each behind
    LLVM's run-time alias checks, are a suspect, not measured. A pixel whose window crosses the border adds its
    taps one by one, 0.0 times the weight in the padding, as :func:`_depthwise` does: the same operations in the
    same order."""
    n, h, w, channels = x.shape
    ho, wo = out.shape[1], out.shape[2]
    zero = np.zeros(1, x.dtype)[0]
    t0, t1, t2 = taps[0, 0], taps[0, 1], taps[0, 2]
    t3, t4, t5 = taps[1, 0], taps[1, 1], taps[1, 2]
    t6, t7, t8 = taps[2, 0], taps[2, 1], taps[2, 2]
    for task in nb.prange(n * ho):
        b, oy = task // ho, task % ho
        y0 = oy * sh - ph
        rows_inside = y0 >= 0 and y0 + 2 * dh < h
        image, y = x[b], out[b, oy]
        # the window's three input rows (clamped into the image: read only when rows_inside)
        top, middle = image[min(max(y0, 0), h - 1)], image[min(max(y0 + dh, 0), h - 1)]
        bottom = image[min(max(y0 + 2 * dh, 0), h - 1)]
        for ox in range(wo):
            x0 = ox * sw - pw
            if rows_inside and x0 >= 0 and x0 + 2 * dw < w:
                x1, x2 = x0 + dw, x0 + 2 * dw
                for e in range(channels):
                    y[ox, e] = ((zero + top[x0, e] * t0[e]) + top[x1, e] * t1[e]) + top[x2, e] * t2[e]
                for e in range(channels):
                    y[ox, e] = ((y[ox, e] + middle[x0, e] * t3[e]) + middle[x1, e] * t4[e]) + middle[x2, e] * t5[e]
                for e in range(channels):
                    y[ox, e] = ((y[ox, e] + bottom[x0, e] * t6[e]) + bottom[x1, e] * t7[e]) + bottom[x2, e] * t8[e]
                continue
            for e in range(channels):
                y[ox, e] = zero
            for i in range(3):
                iy = y0 + i * dh
                for k in range(3):
                    ix = x0 + k * dw
                    if 0 <= iy < h and 0 <= ix < w:
                        for e in range(channels):
                            y[ox, e] = y[ox, e] + image[iy, ix, e] * taps[i, k, e]
                    else:
                        for e in range(channels):
                            y[ox, e] = y[ox, e] + zero * taps[i, k, e]


@typed_njit([f"void({t}[:, :, :, ::1], {t}[:, :, :, ::1], {t}[:, :, :, ::1], int64, int64, int64, int64, int64, int64, "
          f"boolean, {t}[:, :, :, ::1], {t}[:, :, :, :, ::1])" for t in ("float32", "float64")], parallel=True, cache=True)
def _depthwise_wide_grads(x, taps, grad, sh, sw, ph, pw, dh, dw, need_x, dx, dtaps):
    """``x`` [N, H, W, C], ``taps`` [KH, KW, C, m], ``grad`` [N, Ho, Wo, C*m], ``dx`` like x (zeroed; not
    touched unless ``need_x``), ``dtaps`` [N, KH, KW, C, m] per-image partials (zeroed); one task per
    image. Per output pixel and in-image tap: dtaps += x * the m gradients (vectorised), and with
    ``need_x`` dx += the dot product of the m gradients with the m weights."""
    n, h, w, c = x.shape
    kh, kw, m = taps.shape[0], taps.shape[1], taps.shape[3]
    ho, wo = grad.shape[1], grad.shape[2]
    for b in nb.prange(n):
        for oy in range(ho):
            for ox in range(wo):
                g = grad[b, oy, ox]
                for i in range(kh):
                    iy = oy * sh - ph + i * dh
                    if iy < 0 or iy >= h:
                        continue
                    for k in range(kw):
                        ix = ox * sw - pw + k * dw
                        if ix < 0 or ix >= w:
                            continue
                        for ci in range(c):
                            outputs = g if c == 1 else g[ci * m: (ci + 1) * m]  # one input channel: no slice
                            _add_products(dtaps[b, i, k, ci], outputs, x[b, iy, ix, ci])
                            if need_x:
                                total = dx[b, iy, ix, ci]
                                for j in range(m):
                                    total += outputs[j] * taps[i, k, ci, j]
                                dx[b, iy, ix, ci] = total
