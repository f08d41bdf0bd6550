"""Element-wise activations: ReLU, hard sigmoid, PReLU and PokeBNN's DPReLU (fused Numba passes)."""

import numpy as np

from numbnn.autograd import Function, Tensor
from numbnn.errors import InputError
from numbnn.kernels import activations as _activation_kernels
from numbnn.kernels import channels as _channel_kernels


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


class DPRelu(Function):
    """PokeBNN's dynamic PReLU, all four parameters per channel (google/aqt, ``aqt/jax_legacy/jax/imagenet/pokebnn.py``).

    With u = x - shift_x and s = pos_slope if u >= 0 else neg_slope: y = s * u - shift_y.
    Gradients: dy/dx = s, dy/dpos = u * [u >= 0], dy/dneg = u * [u < 0], dy/dshift_x = -s,
    dy/dshift_y = -1; the parameter gradients are summed over all rows (one fused pass).
    """

    @staticmethod
    def forward(ctx, x, pos_slope, neg_slope, shift_x, shift_y):
        c = x.shape[-1]
        x2 = np.ascontiguousarray(x).reshape(-1, c)
        params = [_channel_vector(p, c, x.dtype) for p in (pos_slope, neg_slope, shift_x, shift_y)]
        ctx.save_for_backward(x2, *params[:3])
        return _activation_kernels.dprelu_forward(x2, *params).reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x2, pos, neg, shift_x = ctx.saved
        g2 = np.ascontiguousarray(grad, dtype=x2.dtype).reshape(x2.shape)
        dx = np.empty_like(x2)
        chunks = _channel_kernels.n_chunks(x2.shape[0])
        partial = _activation_kernels.dprelu_backward(g2, x2, pos, neg, shift_x, dx, chunks)
        d_pos, d_neg, sum_dx, sum_g = _channel_kernels.chunk_total(partial)
        return dx.reshape(grad.shape), d_pos, d_neg, -sum_dx, -sum_g


def _channel_vector(p: np.ndarray, channels: int, dtype) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(p, dtype=dtype), (channels,)))


def _check_channel_params(x, **params):
    channels = x.shape[-1]
    for name, p in params.items():
        shape = tuple(np.shape(p.data if isinstance(p, Tensor) else p))
        if shape not in ((), (1,), (channels,)):
            raise InputError(f"{name} must be a scalar or have shape ({channels},) (one per channel), got {shape}")


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
    """Parametric ReLU (He et al. 2015): x for x >= 0, slope * x otherwise; ``slope`` scalar or per channel."""
    _check_channel_params(x, slope=slope)
    return DPRelu.apply(x, 1.0, slope, 0.0, 0.0)


def dprelu(x, pos_slope, neg_slope, shift_x, shift_y) -> Tensor:
    """(pos_slope if u >= 0 else neg_slope) * u - shift_y with u = x - shift_x (PokeBNN's DPReLU).

    Each parameter is a scalar or one value per channel (last axis of x). FTBNN's FPReLU is the case
    shift_x = shift_y = 0; ReActNet's RPReLU(x) = PReLU_beta(x - gamma) + zeta is pos_slope = 1,
    neg_slope = beta, shift_x = gamma, shift_y = -zeta.
    """
    _check_channel_params(x, pos_slope=pos_slope, neg_slope=neg_slope, shift_x=shift_x, shift_y=shift_y)
    return DPRelu.apply(x, pos_slope, neg_slope, shift_x, shift_y)


def dropout(x, p: float, training: bool = True, rng: np.random.Generator | None = None) -> Tensor:
    """Inverted dropout with drop probability ``p``; the identity when not ``training`` or p == 0."""
    if not 0 <= p < 1:
        raise InputError(f"p must be in [0, 1), got {p!r}")
    if not training or p == 0:
        return x if isinstance(x, Tensor) else Tensor(x)
    return Dropout.apply(x, p=float(p), rng=rng if rng is not None else np.random.default_rng())
