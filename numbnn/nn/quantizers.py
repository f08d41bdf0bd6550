"""Quantizer layers: ReActNet's ``RSign`` (a learnable threshold before a sign) and ``FakeQuant``.

The quantizers themselves (forward rule, straight-through derivative, bit width) and their one
registry by name live in :mod:`numbnn.functional.quantizers`; these layers add parameters or options.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import numbnn.functional as F
from numbnn.autograd import Tensor
from numbnn.errors import InputError
from numbnn.functional.quantizers import Quantizer, binary_quantizer, check_fake_quant
from numbnn.nn.activation import check_channels
from numbnn.nn.module import Module


@dataclass
class SignInput:
    """Real values a :class:`~numbnn.nn.conv.BinaryConv2d` binarizes on its packed path, with the
    quantizer and STE bound to do it with (a number, or one bound per channel), and ``shift``, a
    per-channel threshold added before the sign (RSign's b) or None: what :meth:`RSign.before_sign` returns.

    A spatial binary conv takes ``value`` and ``shift`` apart (``F.binary_conv2d(..., shift=)``: x + b is
    never written); any other reader asks :meth:`shifted`, computed once however many convs read it."""

    value: Tensor
    quantizer: Quantizer
    clip: float | np.ndarray
    shift: Tensor | None = None
    _shifted: Tensor | None = field(default=None, init=False, repr=False)  # shifted()'s one result

    def shifted(self):
        """value + shift (value itself without a shift), the same tensor on every call."""
        if self.shift is None:
            return self.value
        if self._shifted is None:
            self._shifted = self.value + self.shift
        return self._shifted


class RSign(Module):
    """ReActNet's RSign (arXiv 2003.03488, eq. 1): q(x + b_c), one learnable threshold per channel.

    The paper writes sign(x - alpha_c); its code adds a learnable bias before the sign, and so does
    this layer: the parameter is ``bias`` = -alpha, initialised to 0. q is a 1-bit sign quantizer
    (default ApproxSign, arXiv 1808.00278) with STE bound ``clip``.

    Before a binary conv, ``conv(rsign.before_sign(x))``: the conv takes the sign of x + b itself, on
    packed bits, and applies q's derivative at the real x + b (a sign of values already +-1 would get
    ApproxSign's derivative at +-1, which is 0). A spatial conv also adds b itself as it packs and never
    writes x + b (:class:`SignInput`); one ``before_sign`` can feed several pointwise convs (ReActNet's
    duplicated 1x1 convs): x + b is then computed once and the gradients meet there.
    """

    def __init__(self, channels: int, quantizer: Quantizer | str = "approx", clip: float = 1.0):
        check_channels(channels)
        self.quantizer = binary_quantizer(quantizer)
        if not clip > 0:
            raise InputError(f"clip must be > 0, got {clip!r}")
        self.clip = float(clip)
        self.bias = Tensor(np.zeros(channels, np.float32), requires_grad=True)

    def before_sign(self, x) -> SignInput:
        """x and b with this RSign's quantizer, for a binary conv to binarize x + b."""
        return SignInput(x, self.quantizer, self.clip, shift=self.bias)

    def forward(self, x):
        return self.quantizer(x + self.bias, self.clip)

    def extra_repr(self) -> str:
        return f"{self.bias.shape[0]}, quantizer={self.quantizer.name!r}"


class FakeQuant(Module):
    """Uniform fake quantization to ``bits`` bits on [-bound, bound], or [0, bound] if not ``signed`` (STE inside).

    Used where a paper runs a layer's inputs at 8 or 4 bits (PokeBNN's stem, head and SE convolutions,
    the SE's second one unsigned); ``act_bits`` lets a cost model price the consuming layer.
    """

    def __init__(self, bits: int, bound: float, signed: bool = True):
        check_fake_quant(bits, bound)
        self.bits = bits
        self.act_bits = bits
        self.bound = float(bound)
        self.signed = bool(signed)

    def forward(self, x):
        return F.fake_quant(x, self.bits, self.bound, self.signed)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, bound={self.bound}" + ("" if self.signed else ", signed=False")
