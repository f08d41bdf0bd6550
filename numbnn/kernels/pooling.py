"""Average pooling over NHWC windows and its adjoint, one parallel pass each.

Window (oy, ox) covers input rows oy*sh - pt .. oy*sh - pt + kh - 1 and columns ox*sw - pl ..
ox*sw - pl + kw - 1; taps outside the image are left out of both the sum and the count (PyTorch's
``count_include_pad=False``)::

    out[n, oy, ox, c] = sum of x[n, iy, ix, c] over the window's real pixels / their number

The adjoint sends g[n, oy, ox, c] / count back to each of those pixels. It runs in gather form, one
task per input row (n, iy) summing the windows that contain it, so no two tasks write one pixel.

:func:`mean` is the one mean of the float model and the packed runtime: numpy's, except that the
spatial mean of float32 NHWC arrays (global average pooling) runs as one parallel pass summing in
numpy's order, x[n, 0, 0] + the other pixels row-major, then / (H*W).
"""

import numba as nb
import numpy as np

from numbnn.errors import InputError
from numbnn.kernels._checks import require_array
from numbnn.kernels.typed import typed_njit

_FLOATS = (np.float32, np.float64)


def avg_pool2d(x, kernel_size, stride, pad_before, out_hw) -> np.ndarray:
    """[N, Ho, Wo, C] window means of NHWC float ``x``; ``kernel_size``, ``stride`` and ``pad_before``
    (top, left) are (h, w) pairs, ``out_hw`` = (Ho, Wo); every window must hold a real pixel."""
    x = require_array(x, "x", _FLOATS, ndim=4)
    (kh, kw), (sh, sw), (pt, pl), (ho, wo) = _check_geometry(x.shape[1:3], kernel_size, stride, pad_before, out_hw)
    out = np.empty((x.shape[0], ho, wo, x.shape[3]), dtype=x.dtype)
    _avg_pool(np.ascontiguousarray(x), kh, kw, sh, sw, pt, pl, out)
    return out


def avg_pool2d_adjoint(grad, input_hw, kernel_size, stride, pad_before, pending=None) -> np.ndarray:
    """Gradient wrt x [N, H, W, C] of :func:`avg_pool2d` for the output gradient ``grad`` [N, Ho, Wo, C];
    plus ``pending`` (a C-contiguous array of dx's shape and dtype) if given: each row of dx gets it added
    once its own sum is complete, so the result is the unfused ``adjoint + pending`` bit for bit in one pass."""
    grad = require_array(grad, "grad", _FLOATS, ndim=4)
    (kh, kw), (sh, sw), (pt, pl), _ = _check_geometry(input_hw, kernel_size, stride, pad_before, grad.shape[1:3])
    dx = np.empty((grad.shape[0], input_hw[0], input_hw[1], grad.shape[3]), dtype=grad.dtype)
    if pending is not None:
        pending = require_array(pending, "pending", (grad.dtype.type,), ndim=4)
        if pending.shape != dx.shape or not pending.flags.c_contiguous:
            raise InputError(f"pending must be a C-contiguous array of shape {dx.shape}, got {pending.shape}")
    _avg_pool_adjoint(np.ascontiguousarray(grad), kh, kw, sh, sw, pt, pl, dx if pending is None else pending,
                      pending is not None, dx)
    return dx


def mean(x, axis, keepdims=False) -> np.ndarray:
    """np.mean(x, axis, keepdims), with float32 [N, H, W, C] over axes (1, 2) as :func:`_spatial_mean`,
    and a float32 mean over a short last axis as :func:`_short_last_axis_mean`."""
    axis = axis if axis is None or _is_one_axis(axis) else tuple(axis)
    axes = sorted(a % x.ndim for a in ((axis,) if _is_one_axis(axis) else axis)) if axis is not None else None
    if is_short_last_axis(x.shape, x.dtype, axis):
        out = _short_last_axis_mean(x)
        return out[..., None] if keepdims else out
    if axes != [1, 2] or x.ndim != 4 or x.dtype != np.float32 or x.shape[1] * x.shape[2] == 0:
        return np.mean(x, axis=axis, keepdims=keepdims)
    out = np.empty((x.shape[0], x.shape[3]), np.float32)
    _spatial_mean(np.ascontiguousarray(x), out)
    return out.reshape(x.shape[0], 1, 1, x.shape[3]) if keepdims else out


def is_short_last_axis(shape, dtype, axis) -> bool:
    """Whether :func:`mean` over ``axis`` of a ``shape`` / ``dtype`` array takes the short-last-axis path."""
    if axis is None or not len(shape):
        return False
    axes = sorted(a % len(shape) for a in ((axis,) if _is_one_axis(axis) else axis))
    return axes == [len(shape) - 1] and dtype == np.float32 and 1 < shape[-1] < 8


def _is_one_axis(axis) -> bool:
    """An axis given as one integer rather than a sequence (np.isscalar's cost is microseconds per call)."""
    return isinstance(axis, (int, np.integer))


def spread_last_axis(values, k: int) -> np.ndarray:
    """``values`` [...] repeated ``k`` times along a new last axis, as a C-contiguous [..., k] array: the
    gradient of a mean over a short last axis, written in parallel (numpy's broadcast view of it would be
    copied on one thread by the reshape that follows it in PokeBNN's channel shrink)."""
    flat = np.ascontiguousarray(values).reshape(-1)
    out = np.empty((flat.size, k), dtype=flat.dtype)
    _spread_rows(flat, out)
    return out.reshape(np.shape(values) + (k,))


@nb.njit(parallel=True, cache=True)
def _spread_rows(values, out):
    rows, k = out.shape
    for block in nb.prange((rows + _MEAN_ROW_BLOCK - 1) // _MEAN_ROW_BLOCK):
        for r in range(block * _MEAN_ROW_BLOCK, min(rows, (block + 1) * _MEAN_ROW_BLOCK)):
            v = values[r]
            for j in range(k):
                out[r, j] = v


def _short_last_axis_mean(x) -> np.ndarray:
    """np.mean over a last axis of 2-7 float32 values, bit for bit, without numpy's slow strided reduction
    (PokeBNN's channel shrink averages pairs in every training step): numpy reduces fewer than 8 contiguous
    terms as 0 + x0 + x1 + ... in order (so -0.0 + -0.0 gives +0.0) and then divides by their count."""
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    out = np.empty(rows.shape[0], np.float32)
    _short_rows_mean(rows, out)
    return out.reshape(x.shape[:-1])


_MEAN_ROW_BLOCK = 4096  # rows per parallel task


@typed_njit("void(float32[:, ::1], float32[::1])", parallel=True, cache=True)
def _short_rows_mean(x, out):
    """out[r] = (0 + x[r, 0] + x[r, 1] + ...) / K in float32, one pass (numpy's strided slices took 4)."""
    rows, k = x.shape
    count = np.float32(k)
    for block in nb.prange((rows + _MEAN_ROW_BLOCK - 1) // _MEAN_ROW_BLOCK):
        for r in range(block * _MEAN_ROW_BLOCK, min(rows, (block + 1) * _MEAN_ROW_BLOCK)):
            total = np.float32(0) + x[r, 0]
            for j in range(1, k):
                total += x[r, j]
            out[r] = total / count


def _check_geometry(input_hw, kernel_size, stride, pad_before, out_hw):
    (kh, kw), (sh, sw), (pt, pl), (ho, wo) = kernel_size, stride, pad_before, out_hw
    values = ((int(kh), int(kw)), (int(sh), int(sw)), (int(pt), int(pl)), (int(ho), int(wo)))  # per call: keep it cheap
    (kh, kw), (sh, sw), (pt, pl), (ho, wo) = values
    (h, w) = input_hw
    if min(kh, kw, sh, sw, ho, wo) < 1 or min(pt, pl) < 0:
        raise InputError(f"kernel_size, stride and out_hw must be positive and pad_before >= 0, got {list(values)}")
    # the last window must start inside the image (else it would hold no real pixel)
    if (ho - 1) * sh - pt >= h or (wo - 1) * sw - pl >= w or kh <= pt or kw <= pl:
        raise InputError(f"an output window of {list(values)} over a {h}x{w} input holds no real pixel")
    return values


@nb.njit(inline="always")
def _span(start, k, size):
    """Real pixels [lo, hi) of a window starting at ``start`` (may be negative) of ``k`` taps."""
    return max(start, 0), min(start + k, size)


@nb.njit(parallel=True, cache=True)
def _avg_pool(x, kh, kw, sh, sw, pt, pl, out):
    """Window means from 0.0, row by row, then / the float32 count. A whole 2x2 or 3x3 window (every zoo
    pool's, but at the edges) is summed in one expression and stored once: summing into the output row,
    which LLVM cannot prove apart from the input, kept the loop scalar. PokeBNN's 3x3 stride-2 shortcut
    pools at batch 256 took 0.40-0.78 of the time, a 2x2 pool 0.34-0.59 (the two kernels in turn in one
    process, bit-identical outputs; a probe on Zen 4, 2026-12-07)."""
    n_img, h, w, c = x.shape
    ho, wo = out.shape[1], out.shape[2]
    zero = np.float32(0.0)  # plus a float64 value, a float64 sum: the sums stay in x's type
    full = np.float32(kh * kw)
    for task in nb.prange(n_img * ho):
        n, oy = task // ho, task % ho
        y0, y1 = _span(oy * sh - pt, kh, h)
        whole_rows = y1 - y0 == kh
        for ox in range(wo):
            x0, x1 = _span(ox * sw - pl, kw, w)
            target = out[n, oy, ox]
            if whole_rows and x1 - x0 == kw and kh == kw == 3:
                for ch in range(c):
                    total = ((zero + x[n, y0, x0, ch]) + x[n, y0, x0 + 1, ch]) + x[n, y0, x0 + 2, ch]
                    total = ((total + x[n, y0 + 1, x0, ch]) + x[n, y0 + 1, x0 + 1, ch]) + x[n, y0 + 1, x0 + 2, ch]
                    total = ((total + x[n, y0 + 2, x0, ch]) + x[n, y0 + 2, x0 + 1, ch]) + x[n, y0 + 2, x0 + 2, ch]
                    target[ch] = total / full
                continue
            if whole_rows and x1 - x0 == kw and kh == kw == 2:
                for ch in range(c):
                    target[ch] = ((((zero + x[n, y0, x0, ch]) + x[n, y0, x0 + 1, ch]) + x[n, y0 + 1, x0, ch])
                                  + x[n, y0 + 1, x0 + 1, ch]) / full
                continue
            for ch in range(c):
                target[ch] = 0.0
            for iy in range(y0, y1):
                for ix in range(x0, x1):
                    for ch in range(c):
                        target[ch] += x[n, iy, ix, ch]
            # a float32 division rounds as the float64 one rounded to float32 (53 >= 2*24 + 2 bits) and
            # vectorises twice as wide
            count = np.float32((y1 - y0) * (x1 - x0))
            for ch in range(c):
                target[ch] /= count


@nb.njit(parallel=True, cache=True)
def _avg_pool_adjoint(grad, kh, kw, sh, sw, pt, pl, pending, with_pending, dx):
    n_img, h, w, c = dx.shape
    ho, wo = grad.shape[1], grad.shape[2]
    for task in nb.prange(n_img * h):
        n, iy = task // h, task % h
        dx[n, iy] = 0
        # windows oy with oy*sh - pt <= iy <= oy*sh - pt + kh - 1
        oy0, oy1 = max(0, -(-(iy + pt - kh + 1) // sh)), min(ho, (iy + pt) // sh + 1)
        for oy in range(oy0, oy1):
            y0, y1 = _span(oy * sh - pt, kh, h)
            for ix in range(w):
                target = dx[n, iy, ix]
                ox0, ox1 = max(0, -(-(ix + pl - kw + 1) // sw)), min(wo, (ix + pl) // sw + 1)
                for ox in range(ox0, ox1):
                    x0, x1 = _span(ox * sw - pl, kw, w)
                    # as a float32 (exact for any window), so float32 gradients divide and add in float32
                    # and the loop vectorises; an integer count made every term a float64 division
                    count = np.float32((y1 - y0) * (x1 - x0))
                    source = grad[n, oy, ox]
                    for ch in range(c):
                        target[ch] += source[ch] / count
        if with_pending:  # the row's sums are complete: adjoint + pending, as the engine would add them
            for ix in range(w):
                target, extra = dx[n, iy, ix], pending[n, iy, ix]
                for ch in range(c):
                    target[ch] += extra[ch]


@nb.njit(inline="always")
def image_mean(image, out):
    """out[c] = the mean of one image [H, W, C] over its pixels, as :func:`_spatial_mean` takes it (shared
    with the squeeze-and-excitation gate, :mod:`numbnn.kernels.squeeze_excite`)."""
    h, w, channels = image.shape
    count = np.float32(h * w)
    for c in range(channels):
        out[c] = image[0, 0, c]
    for i in range(h):
        for k in range(w):
            if i == 0 and k == 0:
                continue
            for c in range(channels):
                out[c] = out[c] + image[i, k, c]
    for c in range(channels):
        out[c] = out[c] / count


@typed_njit("void(float32[:, :, :, ::1], float32[:, ::1])", parallel=True, cache=True)
def _spatial_mean(x, out):
    """out[n, c] = (x[n, 0, 0, c] + the other pixels in row-major order) / (H*W): numpy's order."""
    for b in nb.prange(x.shape[0]):
        image_mean(x[b], out[b])

