"""Arithmetic, reduction and shape ops of :class:`~numbnn.autograd.tensor.Tensor`.

Each backward returns gradients of the broadcast result's shape; the engine reduces them to each
input's shape. Backward methods never write into the incoming ``grad`` (it may be a read-only view).
"""

import numpy as np

from numbnn.autograd.function import Function
from numbnn.kernels import elementwise as _fused

# Below this many elements numpy's single-threaded loop beats waking the thread pool.
PARALLEL_MIN_ELEMENTS = 1 << 16


def add_arrays(a, b):
    """a + b; for large C-contiguous float arrays of one dtype, of equal shapes or one a per-channel
    vector (last axis), a parallel Numba loop with numpy's exact result. Residual connections, the
    learnable biases of BNN blocks and the engine's gradient accumulation all go through here."""
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and a.dtype.kind == "f"):
        return a + b
    if a.ndim == 1 and b.ndim > 1:
        a, b = b, a  # addition commutes exactly
    if max(a.size, b.size) < PARALLEL_MIN_ELEMENTS or not a.flags.c_contiguous:
        return a + b
    if a.shape == b.shape and b.flags.c_contiguous:
        return _fused.add(a.reshape(-1), b.reshape(-1), np.empty(a.size, a.dtype)).reshape(a.shape)
    if b.ndim == 1 and a.ndim > 1 and a.shape[-1] == b.shape[0]:
        rows = a.reshape(-1, b.shape[0])
        return _fused.add_channels(rows, np.ascontiguousarray(b), np.empty_like(rows)).reshape(a.shape)
    return a + b


def channel_sums(grad: np.ndarray) -> np.ndarray:
    """Sum over every axis but the last (a per-channel bias's gradient); large C-contiguous float
    arrays in parallel, each channel accumulated in float64 by fixed row chunks (thread-count
    independent) and rounded once."""
    if grad.dtype.kind != "f" or grad.size < PARALLEL_MIN_ELEMENTS or not grad.flags.c_contiguous:
        return grad.sum(axis=tuple(range(grad.ndim - 1)))
    rows = grad.reshape(-1, grad.shape[-1])
    partial = _fused.chunk_sums(rows, np.zeros(rows.shape[1]), False, _fused.n_chunks(rows.shape[0]))
    return partial.sum(axis=0).astype(grad.dtype)


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return add_arrays(a, b)

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad):
        return grad, (-grad if ctx.needs_input_grad[1] else None)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        da = grad * b if ctx.needs_input_grad[0] else None
        db = grad * a if ctx.needs_input_grad[1] else None
        return da, db


class Div(Function):
    """a / b: d/da = 1/b, d/db = -a/b^2."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        da = grad / b if ctx.needs_input_grad[0] else None
        db = -grad * a / (b * b) if ctx.needs_input_grad[1] else None
        return da, db


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Pow(Function):
    """a ** p for a constant scalar p: d/da = p a^(p-1)."""

    @staticmethod
    def forward(ctx, a, exponent):
        ctx.save_for_backward(a)
        ctx.exponent = exponent
        return a**exponent

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved
        p = ctx.exponent
        return grad * (p * a ** (p - 1))


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * out


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.log(a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad / a


class Sqrt(Function):
    """sqrt(a): d/da = 1 / (2 sqrt(a))."""

    @staticmethod
    def forward(ctx, a):
        out = np.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad / (2 * out)


class MatMul(Function):
    """np.matmul semantics (batched, broadcasting); 1-d operands are promoted as numpy does."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = grad
        if b.ndim == 1:
            g2 = g2[..., None]
        if a.ndim == 1:
            g2 = g2[..., None, :]
        da = db = None
        if ctx.needs_input_grad[0]:
            da = g2 @ np.swapaxes(b2, -1, -2)
            if a.ndim == 1:
                da = da.reshape(-1, a.shape[0]).sum(axis=0)
        if ctx.needs_input_grad[1]:
            db = np.swapaxes(a2, -1, -2) @ g2
            if b.ndim == 1:
                db = db.reshape(-1, b.shape[0]).sum(axis=0)
        return da, db


def _expand_reduced(grad, shape, axis, keepdims):
    """View of a reduction's ``grad`` broadcast back to the input ``shape``."""
    if axis is not None and not keepdims:
        axes = (axis,) if np.isscalar(axis) else tuple(axis)
        grad = np.expand_dims(grad, tuple(ax % len(shape) for ax in axes))
    return np.broadcast_to(grad, shape)


class Sum(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        return np.sum(a, axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        return _expand_reduced(grad, ctx.shape, ctx.axis, ctx.keepdims)


class Mean(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        out = np.mean(a, axis=axis, keepdims=keepdims)
        ctx.count = a.size // max(np.size(out), 1)
        return out

    @staticmethod
    def backward(ctx, grad):
        return _expand_reduced(grad / ctx.count, ctx.shape, ctx.axis, ctx.keepdims)


class Max(Function):
    """Maximum along ``axis``; the gradient is shared equally among tied maxima."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        out = np.max(a, axis=axis, keepdims=True)
        ctx.save_for_backward(a, out)
        ctx.axis, ctx.keepdims = axis, keepdims
        return out if keepdims else np.squeeze(out, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        a, out = ctx.saved
        is_max = a == out
        count = is_max.sum(axis=ctx.axis, keepdims=True)
        g = grad if ctx.keepdims else np.reshape(grad, out.shape)
        return is_max * (g / count).astype(a.dtype, copy=False)


class Reshape(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape)


class Transpose(Function):
    """Axis permutation (``axes=None`` reverses the axes, as numpy does)."""

    @staticmethod
    def forward(ctx, a, axes=None):
        ctx.axes = axes
        return np.transpose(a, axes)

    @staticmethod
    def backward(ctx, grad):
        if ctx.axes is None:
            return np.transpose(grad)
        return np.transpose(grad, np.argsort(ctx.axes))


class GetItem(Function):
    """a[index]; basic indexing scatters the gradient back, advanced indexing accumulates repeats."""

    @staticmethod
    def forward(ctx, a, index):
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return a[index]

    @staticmethod
    def backward(ctx, grad):
        full = np.zeros(ctx.shape, dtype=ctx.dtype)
        if _is_basic_index(ctx.index):
            full[ctx.index] = grad
        else:
            np.add.at(full, ctx.index, grad)
        return full


def _is_basic_index(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis for p in parts)
