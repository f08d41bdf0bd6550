"""Reductions (sum, mean, max), reshape, transpose and indexing of :class:`~numbnn.autograd.tensor.Tensor`,
each a :class:`~numbnn.autograd.function.Function`, and the Tensor methods that run them.

Backward methods never write into the incoming ``grad`` (it may be a read-only view). The methods are
set on Tensor when this module loads (the package's ``__init__`` imports it), so modules import one
way: tensor <- function <- shape_ops.
"""

import numpy as np

from numbnn.autograd.function import Function
from numbnn.autograd.tensor import Tensor
from numbnn.kernels import pooling as pool_kernels


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
        ctx.short_last = pool_kernels.is_short_last_axis(a.shape, a.dtype, axis)
        out = pool_kernels.mean(a, axis, keepdims)  # the packed runtime's reduce calls it too
        ctx.count = a.size // max(np.size(out), 1)
        return out

    @staticmethod
    def backward(ctx, grad):
        if ctx.short_last:  # a channel shrink: the same values, written out in parallel instead of a view
            values = grad / ctx.count
            return pool_kernels.spread_last_axis(values[..., 0] if ctx.keepdims else values, ctx.shape[-1])
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


def _reshape(self, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape.apply(self, shape=shape)


def _transpose(self, *axes):
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return Transpose.apply(self, axes=axes or None)


TENSOR_METHODS = {
    "__getitem__": lambda self, index: GetItem.apply(self, index=index),
    "sum": lambda self, axis=None, keepdims=False: Sum.apply(self, axis=axis, keepdims=keepdims),
    "mean": lambda self, axis=None, keepdims=False: Mean.apply(self, axis=axis, keepdims=keepdims),
    "max": lambda self, axis=None, keepdims=False: Max.apply(self, axis=axis, keepdims=keepdims),
    "reshape": _reshape,
    "transpose": _transpose,
}
for _name, _method in TENSOR_METHODS.items():
    setattr(Tensor, _name, _method)
