"""Fully connected layers: float ``Linear`` (y = x W^T + b, W of shape [out, in]) and ``BinaryLinear``."""

from __future__ import annotations

import numpy as np

import numbnn.functional as F
from numbnn.autograd import Tensor
from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.functional.quantizers import Quantizer, get_quantizer
from numbnn.nn import init
from numbnn.nn.module import Module


class _LinearBase(Module):
    weight_bits = 32
    act_bits = 32

    def __init__(self, in_features: int, out_features: int, bias: bool, rng):
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            check_int(value, name)
        self.in_features, self.out_features = in_features, out_features
        rng = init.generator(rng)
        self.weight = Tensor(init.kaiming_uniform((out_features, in_features), in_features, rng), requires_grad=True)
        self.bias = None
        if bias:
            self.bias = Tensor(init.kaiming_uniform((out_features,), in_features, rng), requires_grad=True)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}" + (", bias=True" if self.bias is not None else "")


class Linear(_LinearBase):
    """y = x W^T + b; W and b drawn from U(-1/sqrt(in), 1/sqrt(in)) as in PyTorch."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rng: np.random.Generator | None = None):
        super().__init__(in_features, out_features, bias, rng)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class BinaryLinear(_LinearBase):
    """y_o = alpha_o * (q(x) . sign(W_o)) (+ b_o), alpha_o = mean|W_o| (constant in backward) for ``scale="mean_abs"``.

    The binary counterpart of :class:`~numbnn.nn.conv.BinaryConv2d` (same quantizer, STE and
    ``latent_init`` options); binary weights on binary activations run packed (``F.binary_linear``).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False, scale: str | None = "mean_abs",
                 act_quantizer: Quantizer | str | None = "approx", act_clip: float = 1.0, weight_clip: float = 1.0,
                 binarize_weights: bool = True, latent_init: float = init.BINARY_LATENT_INIT,
                 rng: np.random.Generator | None = None):
        super().__init__(in_features, out_features, bias, rng)
        init.scale_latent(self.weight.data, latent_init)
        if scale not in ("mean_abs", None):
            raise InputError(f"scale must be 'mean_abs' or None, got {scale!r}")
        for name, value in (("act_clip", act_clip), ("weight_clip", weight_clip)):
            if not value > 0:
                raise InputError(f"{name} must be > 0, got {value!r}")
        self.quantizer = get_quantizer(act_quantizer)
        self.scale = scale
        self.act_clip, self.weight_clip = float(act_clip), float(weight_clip)
        self.binarize_weights = bool(binarize_weights)
        self.weight_bits = 1 if self.binarize_weights else 32
        self.act_bits = self.quantizer.bits

    def alpha(self) -> np.ndarray | None:
        """Per-output scale mean|W_o| (a numpy array: no gradient flows through it)."""
        if self.scale is None or not self.binarize_weights:
            return None
        return np.abs(self.weight.data).mean(axis=1)

    def forward(self, x):
        alpha = self.alpha()
        if self.binarize_weights and self.quantizer.bits == 1:
            y = F.binary_linear(x, self.weight, act_quantizer=self.quantizer, act_clip=self.act_clip,
                                weight_clip=self.weight_clip, scale=alpha)
        else:
            xq = self.quantizer(x, self.act_clip)
            w = F.sign(self.weight, self.weight_clip) if self.binarize_weights else self.weight
            y = F.linear(xq, w, None)
            if alpha is not None:
                y = y * alpha
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return super().extra_repr() + f", act_quantizer={self.quantizer.name!r}"
