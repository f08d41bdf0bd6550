"""Sign functions with straight-through estimators (STEs), and fake quantization.

sign() has zero gradient almost everywhere, so binary networks train by keeping a real-valued
(latent) input, binarizing it in the forward pass and substituting a surrogate gradient in the
backward pass. Each estimator below is a pure function: forward value, then the surrogate
derivative it multiplies the incoming gradient by.

Forward convention of every sign here: +1 where x >= 0 and -1 where x < 0 (so sign(0) = +1,
matching the packed-bit convention of :mod:`numbnn.kernels`: a set bit means x < 0).
"""

import numpy as np

from numbnn.autograd import Function, Tensor
from numbnn.errors import InputError
from numbnn.kernels import activations as _activation_kernels

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def sign_values(x: np.ndarray) -> np.ndarray:
    """+1 / -1 array of x's dtype (+1 for x >= 0, including -0.0)."""
    if x.dtype not in _FLOATS:
        return np.where(x < 0, -1, 1).astype(x.dtype)
    x = np.ascontiguousarray(x)
    return _activation_kernels.sign(x.reshape(-1)).reshape(x.shape)


def ste_backward(grad: np.ndarray, x: np.ndarray, clip: float, out: np.ndarray | None = None) -> np.ndarray:
    """grad * 1{|x| <= clip}: the clipped-identity STE derivative applied to ``grad`` (into ``out`` if given)."""
    g, xf, out = _flat_operands(grad, x, out)
    _activation_kernels.ste_grad(g, xf, clip, out.reshape(-1))
    return out


def approx_sign_backward(grad: np.ndarray, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """grad * max(0, 2 - 2|x|): ApproxSign's derivative (Bi-Real Net, Liu et al. 2018, eq. 5; ReActNet)."""
    g, xf, out = _flat_operands(grad, x, out)
    _activation_kernels.approx_sign_grad(g, xf, out.reshape(-1))
    return out


def _flat_operands(grad, x, out):
    """Flat contiguous views of grad (in x's dtype) and x, and a C-contiguous output buffer of x's dtype
    (``out`` itself when it qualifies, so the result can overwrite the gradient in place)."""
    x = np.ascontiguousarray(x)
    grad = np.ascontiguousarray(grad, dtype=x.dtype)
    if out is None or out.dtype != x.dtype or not out.flags.c_contiguous or out.shape != x.shape:
        out = np.empty_like(x)
    return grad.reshape(-1), x.reshape(-1), out


class SteSign(Function):
    """sign with the clipped straight-through estimator.

    Forward: sign(x). Backward: dL/dx = dL/dy * 1{|x| <= clip}, the derivative of clip(x, -c, c)
    (Hubara et al. 2016, "Binarized Neural Networks", sec. 1.3; Larq's ``ste_sign``). PokeBNN tunes
    ``clip`` (its bound B) as a hyper-parameter.
    """

    @staticmethod
    def forward(ctx, x, clip):
        ctx.save_for_backward(x)
        ctx.clip = clip
        return sign_values(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return ste_backward(grad, x, ctx.clip)


class ApproxSign(Function):
    """sign with Bi-Real Net's piecewise-polynomial estimator.

    Backward uses the derivative of F(x) = -1 (x < -1), 2x + x^2 (-1 <= x < 0), 2x - x^2 (0 <= x < 1),
    1 (x >= 1), namely max(0, 2 - 2|x|): a triangle that peaks at 0 (Liu et al. 2018, eq. 5).
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign_values(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return approx_sign_backward(grad, x)


def sign(x, clip: float = 1.0) -> Tensor:
    """+1 where x >= 0 else -1; gradient passed where |x| <= ``clip`` (clipped STE)."""
    if not clip > 0:
        raise InputError(f"clip must be > 0, got {clip!r}")
    return SteSign.apply(x, clip=float(clip))


ste_sign = sign


def approx_sign(x) -> Tensor:
    """+1 where x >= 0 else -1; gradient times max(0, 2 - 2|x|) (ApproxSign, Bi-Real Net / ReActNet)."""
    return ApproxSign.apply(x)


def quantization_grid(bits: int, bound: float, signed: bool) -> tuple[float, float, float]:
    """(lo, hi, step) of :class:`FakeQuant`'s levels; the packed compiler uses the same numbers."""
    levels = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    return (-bound if signed else 0.0), bound, bound / levels


class FakeQuant(Function):
    """Uniform fake quantization with a straight-through rounding estimator.

    Signed: levels k * s for integer k in [-(2^(b-1) - 1), 2^(b-1) - 1] with s = bound / (2^(b-1) - 1)
    (symmetric, zero exactly representable). Unsigned: k in [0, 2^b - 1], s = bound / (2^b - 1).
    Forward: s * round(clip(x, lo, hi) / s). Backward: round is treated as the identity and the
    clip passes the gradient only inside [lo, hi], as in PokeBNN/AQT's int8 and int4 layers.
    """

    @staticmethod
    def forward(ctx, x, bits, bound, signed):
        lo, hi, step = quantization_grid(bits, bound, signed)
        step = x.dtype.type(step)
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        q = np.clip(x, lo, hi)
        q /= step
        np.rint(q, out=q)
        q *= step
        return q

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        inside = (x >= ctx.lo) & (x <= ctx.hi)
        return grad * inside.astype(grad.dtype)


def fake_quant(x, bits: int, bound: float, signed: bool = True) -> Tensor:
    """Quantize ``x`` to ``bits``-bit uniform levels on [-bound, bound] (or [0, bound] unsigned) with an STE."""
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 16:
        raise InputError(f"bits must be an int in [2, 16], got {bits!r}")
    if not 0 < bound < float("inf"):  # an infinite bound makes every level NaN
        raise InputError(f"bound must be a finite number > 0, got {bound!r}")
    return FakeQuant.apply(x, bits=bits, bound=float(bound), signed=bool(signed))
