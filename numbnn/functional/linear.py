"""Fully connected layer: y = x @ w.T + b, w [out, in] (PyTorch's layout)."""

import numpy as np

from numbnn.autograd import Function, Tensor
from numbnn.errors import InputError
from numbnn.kernels.ordered_matmul import ordered_matmul


class Linear(Function):
    """One product forward, two GEMMs backward: dx = g @ w, dw = g.T @ x, db = sum of g over rows.

    The forward sums each output in a fixed order (:func:`numbnn.kernels.ordered_matmul.ordered_matmul`)
    so that a prediction does not depend on the batch it was computed in; linear layers here are
    classifiers and squeeze-excite projections, a few rows wide, where BLAS would gain nothing.
    """

    @staticmethod
    def forward(ctx, x, w, bias):
        x2 = x.reshape(-1, x.shape[-1])
        dtype = np.result_type(x2, w)
        out = ordered_matmul(x2.astype(dtype, copy=False), w.T.astype(dtype, copy=False))
        if bias is not None:
            out += bias
        ctx.save_for_backward(x2, w)
        ctx.x_shape = x.shape
        return out.reshape(x.shape[:-1] + (w.shape[0],))

    @staticmethod
    def backward(ctx, grad):
        x2, w = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad
        g2 = grad.reshape(-1, w.shape[0])
        dx = (g2 @ w).reshape(ctx.x_shape) if need_x else None
        dw = g2.T @ x2 if need_w else None
        db = g2.sum(axis=0) if need_b else None
        return dx, dw, db


def linear(x, w, bias=None) -> Tensor:
    """x [..., in] times w [out, in] transposed, plus optional bias [out]."""
    if len(w.shape) != 2 or x.shape[-1] != w.shape[1]:
        raise InputError(f"w must be [out, {x.shape[-1]}] for x of shape {tuple(x.shape)}, got {tuple(w.shape)}")
    if bias is not None and tuple(bias.shape) != (w.shape[0],):
        raise InputError(f"bias must have shape ({w.shape[0]},), got {tuple(bias.shape)}")
    return Linear.apply(x, w, bias)
