"""Element-wise activations, including the learnable per-channel ones of the BNN papers.

Every per-channel parameter has shape [C] and broadcasts over the last (channel) axis.
"""

from __future__ import annotations

import numpy as np

import numbnn.functional as F
from numbnn.autograd import Tensor
from numbnn.checks import check_int
from numbnn.nn.module import Module


def check_channels(channels) -> None:
    check_int(channels, "channels")


def _per_channel(channels: int, value: float) -> Tensor:
    check_channels(channels)
    return Tensor(np.full(channels, value, np.float32), requires_grad=True)


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class HardSigmoid(Module):
    """min(max(x + 3, 0), 6) / 6, the gate of PokeBNN's squeeze-and-excitation."""

    def forward(self, x):
        return F.hard_sigmoid(x)


class PReLU(Module):
    """x for x >= 0, a_c x otherwise (He et al. 2015), a initialised to ``init``."""

    def __init__(self, channels: int, init: float = 0.25):
        self.slope = _per_channel(channels, init)

    def forward(self, x):
        return F.prelu(x, self.slope)

    def dprelu_params(self) -> tuple:
        """(pos_slope, neg_slope, shift_x, shift_y) of F.dprelu computing this activation (for fused ops)."""
        return 1.0, self.slope, 0.0, 0.0

    def extra_repr(self) -> str:
        return str(self.slope.shape[0])


class RPReLU(Module):
    """ReActNet's RPReLU: PReLU_beta(x - gamma_c) + zeta_c; gamma, zeta initialised 0, slope beta to ``init``.

    Computed as one fused op, DPReLU with pos_slope = 1, neg_slope = beta, shift_x = gamma, shift_y = -zeta.
    """

    def __init__(self, channels: int, init: float = 0.25):
        self.gamma = _per_channel(channels, 0.0)
        self.slope = _per_channel(channels, init)
        self.zeta = _per_channel(channels, 0.0)

    def forward(self, x):
        return F.dprelu(x, *self.dprelu_params())

    def dprelu_params(self) -> tuple:
        """(pos_slope, neg_slope, shift_x, shift_y) of F.dprelu computing this activation (for fused ops)."""
        return 1.0, self.slope, self.gamma, -self.zeta

    def extra_repr(self) -> str:
        return str(self.slope.shape[0])


class DPReLU(Module):
    """PokeBNN's dynamic PReLU, per channel: u = x - shift_x; y = (pos_slope if u >= 0 else neg_slope) u - shift_y.

    Initialised to shift_x = shift_y = 0, pos_slope = 1, neg_slope = 0.25. ``learn_shifts=False`` drops
    both shifts (fixed at 0), which is FTBNN's FPReLU.
    """

    def __init__(self, channels: int, learn_shifts: bool = True, pos_init: float = 1.0, neg_init: float = 0.25):
        self.pos_slope = _per_channel(channels, pos_init)
        self.neg_slope = _per_channel(channels, neg_init)
        self.learn_shifts = bool(learn_shifts)
        if self.learn_shifts:
            self.shift_x = _per_channel(channels, 0.0)
            self.shift_y = _per_channel(channels, 0.0)

    def forward(self, x):
        return F.dprelu(x, *self.dprelu_params())

    def dprelu_params(self) -> tuple:
        """(pos_slope, neg_slope, shift_x, shift_y) of F.dprelu computing this activation (for fused ops)."""
        if self.learn_shifts:
            return self.pos_slope, self.neg_slope, self.shift_x, self.shift_y
        return self.pos_slope, self.neg_slope, 0.0, 0.0

    def extra_repr(self) -> str:
        return f"{self.pos_slope.shape[0]}" + ("" if self.learn_shifts else ", learn_shifts=False")


class FPReLU(DPReLU):
    """FTBNN's fully parametric ReLU: a_c x for x >= 0, b_c x otherwise, both slopes learnable.

    It is DPReLU without shifts.
    """

    def __init__(self, channels: int, pos_init: float = 1.0, neg_init: float = 0.25):
        super().__init__(channels, learn_shifts=False, pos_init=pos_init, neg_init=neg_init)

    def extra_repr(self) -> str:
        return f"{self.pos_slope.shape[0]}"
