"""Arithmetic, reduction and shape ops of :class:`~numbnn.autograd.tensor.Tensor`.

Each backward returns gradients of the broadcast result's shape; the engine reduces them to each
input's shape. Backward methods never write into the incoming ``grad`` (it may be a read-only view).
"""

import numpy as np

from numbnn.autograd.arrays import add_arrays
from numbnn.autograd.function import Function
from numbnn.autograd.tensor import Tensor
from numbnn.kernels import pooling as pool_kernels

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
        out = pool_kernels.mean(a, axis, keepdims)  # the packed runtime's reduce calls it too
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


# ---- Tensor's operators and methods -----------------------------------------------------------------
# Each runs one op above. They are set on Tensor here, beside the ops, when this module loads (the
# package's __init__ imports it), so the modules import one way: tensor <- function <- basic_ops.


def _reshape(self, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape.apply(self, shape=shape)


def _transpose(self, *axes):
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return Transpose.apply(self, axes=axes or None)


TENSOR_METHODS = {
    "__add__": lambda self, other: Add.apply(self, other),
    "__radd__": lambda self, other: Add.apply(other, self),
    "__sub__": lambda self, other: Sub.apply(self, other),
    "__rsub__": lambda self, other: Sub.apply(other, self),
    "__mul__": lambda self, other: Mul.apply(self, other),
    "__rmul__": lambda self, other: Mul.apply(other, self),
    "__truediv__": lambda self, other: Div.apply(self, other),
    "__rtruediv__": lambda self, other: Div.apply(other, self),
    "__matmul__": lambda self, other: MatMul.apply(self, other),
    "__rmatmul__": lambda self, other: MatMul.apply(other, self),
    "__neg__": lambda self: Neg.apply(self),
    "__pow__": lambda self, exponent: Pow.apply(self, exponent=exponent),
    "__getitem__": lambda self, index: GetItem.apply(self, index=index),
    "sum": lambda self, axis=None, keepdims=False: Sum.apply(self, axis=axis, keepdims=keepdims),
    "mean": lambda self, axis=None, keepdims=False: Mean.apply(self, axis=axis, keepdims=keepdims),
    "max": lambda self, axis=None, keepdims=False: Max.apply(self, axis=axis, keepdims=keepdims),
    "reshape": _reshape,
    "transpose": _transpose,
    "exp": lambda self: Exp.apply(self),
    "log": lambda self: Log.apply(self),
    "sqrt": lambda self: Sqrt.apply(self),
}
for _name, _method in TENSOR_METHODS.items():
    setattr(Tensor, _name, _method)
