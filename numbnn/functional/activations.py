"""Element-wise activations: ReLU, hard sigmoid, PReLU and PokeBNN's DPReLU."""

import numpy as np

from numbnn.autograd import Function, Tensor
from numbnn.errors import InputError


class Relu(Function):
    @staticmethod
    def forward(ctx, x):
        positive = x > 0
        ctx.save_for_backward(positive)
        return x * positive

    @staticmethod
    def backward(ctx, grad):
        (positive,) = ctx.saved
        return grad * positive


class HardSigmoid(Function):
    """relu6(x + 3) / 6: 0 below -3, 1 above 3, linear (slope 1/6) between (MobileNetV3; PokeBNN's SE gate)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        out = x + 3
        np.clip(out, 0, 6, out=out)
        out /= 6
        return out

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * ((x > -3) & (x < 3)) / 6


class PRelu(Function):
    """x where x >= 0, slope * x otherwise; ``slope`` broadcasts against x (per channel: shape [C])."""

    @staticmethod
    def forward(ctx, x, slope):
        negative = x < 0
        ctx.save_for_backward(x, slope, negative)
        return np.where(negative, x * slope, x)

    @staticmethod
    def backward(ctx, grad):
        x, slope, negative = ctx.saved
        dx = np.where(negative, grad * slope, grad) if ctx.needs_input_grad[0] else None
        dslope = grad * x * negative if ctx.needs_input_grad[1] else None
        return dx, dslope


class DPRelu(Function):
    """PokeBNN's dynamic PReLU, all four parameters per channel (NOTES.md sec. 5).

    With u = x - shift_x and s = pos_slope if u >= 0 else neg_slope: y = s * u - shift_y.
    Gradients: dy/dx = s, dy/dpos = u * [u >= 0], dy/dneg = u * [u < 0], dy/dshift_x = -s,
    dy/dshift_y = -1.
    """

    @staticmethod
    def forward(ctx, x, pos_slope, neg_slope, shift_x, shift_y):
        u = x - shift_x
        positive = u >= 0
        slope = np.where(positive, pos_slope, neg_slope)
        ctx.save_for_backward(u, positive, slope)
        out = slope * u
        out -= shift_y
        return out

    @staticmethod
    def backward(ctx, grad):
        u, positive, slope = ctx.saved
        need_x, need_pos, need_neg, need_sx, need_sy = ctx.needs_input_grad
        dx = grad * slope if (need_x or need_sx) else None
        gu = grad * u if (need_pos or need_neg) else None
        dpos = gu * positive if need_pos else None
        dneg = gu * ~positive if need_neg else None
        dsx = -dx if need_sx else None
        dsy = -grad if need_sy else None
        return (dx if need_x else None), dpos, dneg, dsx, dsy


class Dropout(Function):
    """Inverted dropout: zero each entry with probability p, scale the survivors by 1 / (1 - p)."""

    @staticmethod
    def forward(ctx, x, p, rng):
        keep = (rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype)
        keep *= 1 / (1 - p)
        ctx.save_for_backward(keep)
        return x * keep

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved
        return grad * keep


def relu(x) -> Tensor:
    """max(x, 0); the gradient at 0 is taken as 0."""
    return Relu.apply(x)


def hard_sigmoid(x) -> Tensor:
    """relu6(x + 3) / 6."""
    return HardSigmoid.apply(x)


def prelu(x, slope) -> Tensor:
    """Parametric ReLU (He et al. 2015): learnable ``slope`` for negative inputs, per channel."""
    return PRelu.apply(x, slope)


def dprelu(x, pos_slope, neg_slope, shift_x, shift_y) -> Tensor:
    """(pos_slope if u >= 0 else neg_slope) * u - shift_y with u = x - shift_x (PokeBNN's DPReLU).

    FTBNN's FPReLU is the case shift_x = shift_y = 0; ReActNet's RPReLU(x) = PReLU_beta(x - gamma) + zeta
    is pos_slope = 1, neg_slope = beta, shift_x = gamma, shift_y = -zeta.
    """
    return DPRelu.apply(x, pos_slope, neg_slope, shift_x, shift_y)


def dropout(x, p: float, training: bool = True, rng: np.random.Generator | None = None) -> Tensor:
    """Inverted dropout with drop probability ``p``; the identity when not ``training`` or p == 0."""
    if not 0 <= p < 1:
        raise InputError(f"p must be in [0, 1), got {p!r}")
    if not training or p == 0:
        return x if isinstance(x, Tensor) else Tensor(x)
    return Dropout.apply(x, p=float(p), rng=rng if rng is not None else np.random.default_rng())
