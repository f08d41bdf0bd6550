"""Activation quantizers by name, so layers take ``act_quantizer="approx_sign"``, and the FakeQuant layer.

Each quantizer is a forward rule plus a backward (straight-through) rule:

- ``"ste_sign"``: sign(x) (sign(0) = +1); gradient 1 where |x| <= clip, else 0 (the clipped STE of
  Hubara et al. 2016; ``clip`` is PokeBNN's tunable bound B).
- ``"approx_sign"``: sign(x); gradient 2 - 2|x| on [-1, 1], else 0 (Bi-Real Net's ApproxSign, used by
  ReActNet). Do not apply it to values that are already +-1: its gradient there is 0.
- ``"none"``: the identity (real-valued activations).

``"ste"`` and ``"approx"`` are accepted as short aliases, and ``None`` means ``"none"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numbnn.functional as F
from numbnn.errors import InputError
from numbnn.nn.module import Module


@dataclass(frozen=True)
class Quantizer:
    """``fn(x, clip)`` applies it; ``act_grad`` is the name ``F.binary_conv2d`` knows it by; ``bits`` its width."""

    name: str
    fn: Callable
    act_grad: str | None
    bits: int

    def __call__(self, x, clip: float = 1.0):
        return self.fn(x, clip)


def ste_sign(x, clip: float = 1.0):
    """sign(x), gradient passed where |x| <= clip."""
    return F.sign(x, clip)


def approx_sign(x, clip: float = 1.0):
    """sign(x) with ApproxSign's gradient 2 - 2|x| on [-1, 1] (``clip`` is not used)."""
    return F.approx_sign(x)


def identity(x, clip: float = 1.0):
    """No quantization."""
    return x


QUANTIZERS = {
    "ste_sign": Quantizer("ste_sign", ste_sign, "ste", 1),
    "approx_sign": Quantizer("approx_sign", approx_sign, "approx", 1),
    "none": Quantizer("none", identity, None, 32),
}
_ALIASES = {"ste": "ste_sign", "approx": "approx_sign", None: "none"}


def get_quantizer(name: str | None) -> Quantizer:
    """The registered quantizer called ``name`` (or one of its aliases)."""
    key = _ALIASES.get(name, name)
    if key not in QUANTIZERS:
        raise InputError(f"act_quantizer must be one of {sorted(QUANTIZERS)} (or 'ste', 'approx', None), got {name!r}")
    return QUANTIZERS[key]


class FakeQuant(Module):
    """Uniform fake quantization to ``bits`` bits on [-bound, bound], or [0, bound] if not ``signed`` (STE inside).

    Used where a paper runs a layer's inputs at 8 or 4 bits (PokeBNN's stem, head and SE convolutions,
    the SE's second one unsigned); ``act_bits`` lets a cost model price the consuming layer.
    """

    def __init__(self, bits: int, bound: float, signed: bool = True):
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 < bits <= 16:
            raise InputError(f"bits must be an integer in 2..16, got {bits!r}")
        if not bound > 0:
            raise InputError(f"bound must be > 0, got {bound!r}")
        self.bits = bits
        self.act_bits = bits
        self.bound = float(bound)
        self.signed = bool(signed)

    def forward(self, x):
        return F.fake_quant(x, self.bits, self.bound, self.signed)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, bound={self.bound}" + ("" if self.signed else ", signed=False")
