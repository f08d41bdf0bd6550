"""Convolution layers on NHWC activations with OHWI weights: float ``Conv2d`` and ``BinaryConv2d``.

Both carry the cost-model facts a summary needs, ``weight_bits`` and ``act_bits``; with the output's
spatial size Ho x Wo, MACs = N * Ho * Wo * KH * KW * C_in/groups * C_out.
"""

from __future__ import annotations

import numpy as np

import numbnn.functional as F
from numbnn.autograd import Tensor
from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.functional.quantizers import Quantizer, get_quantizer
from numbnn.nn import init
from numbnn.nn.module import Module
from numbnn.nn.quantizers import SignInput
from numbnn.nn.reshape import ShuffledInput


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise InputError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair


class _ConvBase(Module):
    """Shared geometry, the Kaiming-initialised OHWI weight, and the bit widths the cost model reads."""

    weight_bits = 32
    act_bits = 32

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, rng):
        in_channels, out_channels = check_int(in_channels, "in_channels"), check_int(out_channels, "out_channels")
        groups = check_int(groups, "groups")
        if in_channels % groups or out_channels % groups:
            raise InputError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        kh, kw = self.kernel_size
        fan_in = kh * kw * in_channels // groups
        shape = (out_channels, kh, kw, in_channels // groups)
        self.weight = Tensor(init.kaiming_normal(shape, fan_in, rng), requires_grad=True)

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}", f"kernel_size={self.kernel_size}"]
        for name, default in (("stride", (1, 1)), ("padding", (0, 0)), ("dilation", (1, 1))):
            if getattr(self, name) != default:
                parts.append(f"{name}={getattr(self, name)}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        return ", ".join(parts)


class Conv2d(_ConvBase):
    """Real-valued convolution: y = conv(x, W) + b, W of shape [C_out, KH, KW, C_in/groups]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = False, rng: np.random.Generator | None = None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, rng)
        self.bias = Tensor(np.zeros(out_channels, np.float32), requires_grad=True) if bias else None

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", bias=True" if self.bias is not None else "")


class BinaryConv2d(_ConvBase):
    """Binary convolution with latent real weights (XNOR-Net, Rastegari et al. 2016; ReActNet's HardBinaryConv).

    Forward: y_o = alpha_o * conv(q(x), sign(W))_o with alpha_o = mean|W_o| over (KH, KW, C_in) for
    ``scale="mean_abs"`` (a constant in backward: it is computed from ``W.data``), or alpha = 1 for
    ``scale=None``. q is the activation quantizer (a :class:`~numbnn.functional.quantizers.Quantizer` or
    its registered name: "approx_sign", "ste_sign", "none", or "approx", "ste", None); the weight gradient
    is the clipped STE: passed where |W| <= ``weight_clip`` (the gradient of clamp(W, -1, 1) in ReActNet).

    ``pad_value`` (0, +1 or -1) is the value padded positions take. When both weights and activations
    are binary the forward runs on packed bits (``F.binary_conv2d``); the other settings run a float
    convolution on the quantized operands:

    - ``binarize_weights=False``: ReActNet's step 1, binary activations with real weights;
    - ``act_quantizer=None``: binary weights on real activations.

    Given a :class:`~numbnn.nn.quantizers.SignInput` (``rsign.before_sign(x)``: ReActNet's RSign before
    the conv), the layer binarizes its value with its quantizer and clip instead of its own, still packed.
    Given a :class:`~numbnn.nn.reshape.ShuffledInput` (``shuffle.before_conv(x)``: FTBNN's channel shuffle
    before the conv), the packed path shuffles it itself (``F.binary_conv2d(..., shuffle_groups=)``).

    The latent weights start at Kaiming-normal x ``latent_init`` (default
    :data:`numbnn.nn.init.BINARY_LATENT_INIT`, 0.1: small latent weights flip sign sooner, see there),
    whether or not they are binarized, so step 1 of a two-step run starts from the same scale.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, pad_value: float = 0, scale: str | None = "mean_abs",
                 act_quantizer: Quantizer | str | None = "approx", act_clip: float = 1.0, weight_clip: float = 1.0,
                 binarize_weights: bool = True, latent_init: float = init.BINARY_LATENT_INIT,
                 rng: np.random.Generator | None = None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, rng)
        init.scale_latent(self.weight.data, latent_init)
        if scale not in ("mean_abs", None):
            raise InputError(f"scale must be 'mean_abs' or None, got {scale!r}")
        for name, value in (("act_clip", act_clip), ("weight_clip", weight_clip)):
            if not value > 0:
                raise InputError(f"{name} must be > 0, got {value!r}")
        if pad_value not in (0, 1, -1):  # F.binary_conv2d checks too, but forward's float path pads via F.pad
            raise InputError(f"pad_value must be 0, 1 or -1, got {pad_value!r}")
        self.quantizer = get_quantizer(act_quantizer)
        self.pad_value = pad_value
        self.scale = scale
        self.act_clip, self.weight_clip = float(act_clip), float(weight_clip)
        self.binarize_weights = bool(binarize_weights)
        self.weight_bits = 1 if self.binarize_weights else 32
        self.act_bits = self.quantizer.bits

    def alpha(self) -> np.ndarray | None:
        """Per-output-channel scale mean|W_o| (a numpy array: no gradient flows through it)."""
        if self.scale is None or not self.binarize_weights:
            return None
        return np.abs(self.weight.data).mean(axis=(1, 2, 3))

    def weight_values(self):
        """The weights the conv multiplies by: sign(W) with the clipped STE, or W if not ``binarize_weights``."""
        return F.sign(self.weight, self.weight_clip) if self.binarize_weights else self.weight

    def forward(self, x):
        quantizer, clip, shift, shuffle_groups = self.quantizer, self.act_clip, None, 1
        if isinstance(x, SignInput):
            quantizer, clip = x.quantizer, x.clip
        packed = self.binarize_weights and quantizer.bits == 1
        if isinstance(x, ShuffledInput):
            x, shuffle_groups = (x.value, x.groups) if packed else (x.shuffled(), 1)
        if isinstance(x, SignInput):
            spatial = self.weight.shape[1] * self.weight.shape[2] > 1
            # a spatial conv adds RSign's threshold as it packs (module docstring of numbnn.functional.binary)
            x, shift = (x.value, x.shift) if packed and spatial else (x.shifted(), None)
        geometry = (self.stride, self.padding, self.dilation, self.groups)
        alpha = self.alpha()
        if packed:
            y = F.binary_conv2d(x, self.weight, *geometry, pad_value=self.pad_value, act_quantizer=quantizer,
                                act_clip=clip, weight_clip=self.weight_clip, scale=alpha, shift=shift,
                                shuffle_groups=shuffle_groups)
        else:
            xq = quantizer(x, clip)
            if self.pad_value != 0 and self.padding != (0, 0):
                (ph, pw), geometry = self.padding, (self.stride, 0, self.dilation, self.groups)
                xq = F.pad(xq, ((0, 0), (ph, ph), (pw, pw), (0, 0)), value=self.pad_value)
            y = F.conv2d(xq, self.weight_values(), None, *geometry)
            if alpha is not None:
                y = y * alpha
        return y

    def extra_repr(self) -> str:
        parts = [super().extra_repr(), f"act_quantizer={self.quantizer.name!r}"]
        if not self.binarize_weights:
            parts.append("binarize_weights=False")
        if self.scale is None:
            parts.append("scale=None")
        if self.pad_value != 0:
            parts.append(f"pad_value={self.pad_value}")
        return ", ".join(parts)
