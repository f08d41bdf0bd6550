"""Activation quantizers as objects (forward rule, straight-through derivative, bit width), and fake quantization.

sign() has zero gradient almost everywhere, so binary networks train by keeping a real-valued
(latent) input, binarizing it in the forward pass and substituting a surrogate gradient in the
backward pass (a straight-through estimator, STE). A :class:`Quantizer` carries both rules and its
bit width; the ops that binarize (:func:`sign`, :func:`approx_sign`, ``binary_conv2d``,
``binary_linear``) take one, and :data:`QUANTIZERS` is the one registry of them by name:

- ``"ste_sign"``: sign(x); derivative 1{|x| <= clip}, that of clip(x, -clip, clip) (Hubara et al.,
  arXiv 1602.02830, sec. 1.3; PokeBNN tunes ``clip`` as its bound B). ``clip`` is a number or one
  bound per channel (the last axis), :func:`check_clip`;
- ``"approx_sign"``: sign(x); derivative max(0, 2 - 2|x|) (Bi-Real Net's ApproxSign, arXiv 1808.00278,
  eq. 5, used by ReActNet, arXiv 2003.03488). Its derivative is 0 at +-1, so it must see the real
  input, not one already binarized;
- ``"none"``: the identity (real-valued activations, 32 bits).

Layers also accept the short names ``"ste"``, ``"approx"`` and ``None`` (:func:`get_quantizer`).

Forward convention of every sign here: +1 where x >= 0 and -1 where x < 0 (so sign(0) = +1,
matching the packed-bit convention of :mod:`numbnn.kernels`: a set bit means x < 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


def ste_backward(grad: np.ndarray, x: np.ndarray, clip, out: np.ndarray | None = None) -> np.ndarray:
    """grad * 1{|x| <= clip} (into ``out`` if given): the derivative of clip(x, -clip, clip), the STE of
    Hubara et al. (arXiv 1602.02830, sec. 1.3). ``clip``: a number, or an array of one bound per channel
    (x's last axis), broadcast as numpy does."""
    g, xf, out = _flat_operands(grad, x, out)
    if np.ndim(clip):
        np.multiply(g.reshape(out.shape), np.abs(xf.reshape(out.shape)) <= clip, out=out)
    else:
        _activation_kernels.ste_grad(g, xf, clip, out.reshape(-1))
    return out


def check_clip(clip, channels: int, name: str = "clip"):
    """An STE bound: a number > 0 (returned as a float), or one bound per channel, an array of shape
    (``channels``,) with every entry > 0 (returned as a float64 copy, so later changes to the caller's
    array, e.g. a running statistic, do not reach a saved backward)."""
    if np.ndim(clip) == 0:
        try:
            value = float(clip)
        except (TypeError, ValueError):
            value = float("nan")
        if not value > 0:
            raise InputError(f"{name} must be a number > 0 or one per channel, got {clip!r}")
        return value
    bounds = np.array(clip, dtype=np.float64)
    if bounds.shape != (channels,) or not np.all(bounds > 0):
        raise InputError(f"a per-channel {name} must have shape ({channels},) and entries > 0, got shape "
                         f"{bounds.shape}, min {np.min(bounds) if bounds.size else None}")
    return bounds


def approx_sign_backward(grad: np.ndarray, x: np.ndarray, clip: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """grad * max(0, 2 - 2|x|) (into ``out`` if given): Bi-Real Net's ApproxSign (arXiv 1808.00278, eq. 5),
    the derivative of F(x) = -1 (x < -1), 2x + x^2 (-1 <= x < 0), 2x - x^2 (0 <= x < 1), 1 (x >= 1),
    a triangle peaking at 0. ``clip`` is not used: the support is [-1, 1]."""
    g, xf, out = _flat_operands(grad, x, out)
    _activation_kernels.approx_sign_grad(g, xf, out.reshape(-1))
    return out


def _identity(x: np.ndarray) -> np.ndarray:
    """No quantization: the real values themselves."""
    return x


def _identity_backward(grad: np.ndarray, x: np.ndarray, clip: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """The identity's derivative: the gradient unchanged."""
    return grad


def _flat_operands(grad, x, out):
    """Flat contiguous views of grad (in x's dtype) and x, and a C-contiguous output buffer of x's dtype
    (``out`` itself when it qualifies, so the result can overwrite the gradient in place)."""
    x = np.ascontiguousarray(x)
    grad = np.ascontiguousarray(grad, dtype=x.dtype)
    if out is None or out.dtype != x.dtype or not out.flags.c_contiguous or out.shape != x.shape:
        out = np.empty_like(x)
    return grad.reshape(-1), x.reshape(-1), out


@dataclass(frozen=True)
class Quantizer:
    """An activation quantizer: ``forward(x)`` on arrays, ``backward(grad, x, clip, out=None)`` the
    straight-through derivative at x times ``grad`` (into ``out`` if given), ``bits`` its width.

    Calling it on a Tensor applies it as an autograd op (:class:`Quantize`); the identity returns x itself.
    """

    name: str
    forward: Callable[[np.ndarray], np.ndarray]
    backward: Callable[..., np.ndarray]
    bits: int

    def __call__(self, x, clip=1.0):
        if self.forward is _identity:
            return x
        shape = x.shape if isinstance(x, Tensor) else np.shape(x)
        return Quantize.apply(x, quantizer=self, clip=check_clip(clip, shape[-1] if shape else 1))


STE_SIGN = Quantizer("ste_sign", sign_values, ste_backward, 1)
APPROX_SIGN = Quantizer("approx_sign", sign_values, approx_sign_backward, 1)
IDENTITY = Quantizer("none", _identity, _identity_backward, 32)

QUANTIZERS = {q.name: q for q in (STE_SIGN, APPROX_SIGN, IDENTITY)}
_SHORT_NAMES = {"ste": "ste_sign", "approx": "approx_sign", None: "none"}


def get_quantizer(quantizer: Quantizer | str | None) -> Quantizer:
    """``quantizer`` itself, or the registered quantizer of that name (or short name: "ste", "approx", None)."""
    if isinstance(quantizer, Quantizer):
        return quantizer
    key = _SHORT_NAMES.get(quantizer, quantizer)
    if not isinstance(key, str) or key not in QUANTIZERS:
        raise InputError(f"act_quantizer must be a Quantizer or one of {sorted(QUANTIZERS)} "
                         f"(or 'ste', 'approx', None), got {quantizer!r}")
    return QUANTIZERS[key]


def binary_quantizer(quantizer: Quantizer | str | None) -> Quantizer:
    """:func:`get_quantizer`, checked to binarize with the packed kernels' sign (1 bit, sign(0) = +1)."""
    quantizer = get_quantizer(quantizer)
    if quantizer.forward is not sign_values:
        raise InputError(f"act_quantizer must be a 1-bit sign quantizer (e.g. 'ste_sign', 'approx_sign'), got {quantizer.name!r}")
    return quantizer


class Quantize(Function):
    """quantizer.forward(x), with quantizer.backward's straight-through gradient (see :class:`Quantizer`)."""

    @staticmethod
    def forward(ctx, x, quantizer, clip):
        ctx.save_for_backward(x)
        ctx.quantizer, ctx.clip = quantizer, clip
        return quantizer.forward(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return ctx.quantizer.backward(grad, x, ctx.clip)


def sign(x, clip=1.0) -> Tensor:
    """+1 where x >= 0 else -1; gradient passed where |x| <= ``clip`` (clipped STE; a number or one bound
    per channel)."""
    return STE_SIGN(x, clip)


ste_sign = sign


def approx_sign(x) -> Tensor:
    """+1 where x >= 0 else -1; gradient times max(0, 2 - 2|x|) (ApproxSign, Bi-Real Net / ReActNet)."""
    return APPROX_SIGN(x)


class SignMean(Function):
    """The mean of a 1-bit quantizer's signs over every axis but the last (the channels), without
    writing the signs: m_c = (M - 2 n_c) / M, n_c the count of x < 0 in channel c over M values
    (RB-Net's balanced activation centres each channel's bits by it). It equals numpy's float32 mean
    of the +-1 values bit for bit (their sum is an exact integer below 2^24 values, and the float64
    quotient of two such integers rounds to the float32 quotient). Backward: the quantizer's
    straight-through gradient of g_c / M spread over the values, as Quantize after Mean computes it."""

    @staticmethod
    def forward(ctx, x, quantizer, clip):
        x = np.ascontiguousarray(x)
        rows = x.size // x.shape[-1]
        counts = _activation_kernels.negative_counts(x.reshape(rows, x.shape[-1]))
        ctx.save_for_backward(x)
        ctx.quantizer, ctx.clip, ctx.rows = quantizer, clip, rows
        return ((rows - 2 * counts) / rows).astype(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return ctx.quantizer.backward(np.broadcast_to(grad / ctx.rows, x.shape), x, ctx.clip)


def sign_mean(x, quantizer: Quantizer | str = APPROX_SIGN, clip=1.0) -> Tensor:
    """Per channel (last axis), the mean over every other axis of ``quantizer``'s +-1 signs of x, with its
    straight-through gradient (:class:`SignMean`); ``quantizer`` must binarize (1 bit)."""
    quantizer = binary_quantizer(quantizer)
    shape = x.shape if isinstance(x, Tensor) else np.shape(x)
    if not shape or 0 in shape:
        raise InputError(f"sign_mean needs values along a channel axis (the last), got shape {tuple(shape)}")
    return SignMean.apply(x, quantizer=quantizer, clip=check_clip(clip, shape[-1]))


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


def check_fake_quant(bits, bound) -> None:
    """:class:`FakeQuant`'s arguments: an int width in [2, 16] and a finite bound > 0."""
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 16:
        raise InputError(f"bits must be an int in [2, 16], got {bits!r}")
    if not 0 < bound < float("inf"):  # an infinite bound makes every level NaN
        raise InputError(f"bound must be a finite number > 0, got {bound!r}")


def fake_quant(x, bits: int, bound: float, signed: bool = True) -> Tensor:
    """Quantize ``x`` to ``bits``-bit uniform levels on [-bound, bound] (or [0, bound] unsigned) with an STE."""
    check_fake_quant(bits, bound)
    return FakeQuant.apply(x, bits=bits, bound=float(bound), signed=bool(signed))
