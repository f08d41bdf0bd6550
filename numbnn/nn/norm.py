"""Batch normalisation over every axis but the last (channels), for NHWC maps and [N, C] features."""

from __future__ import annotations

import numpy as np

import numbnn.functional as F
from numbnn.autograd import Tensor
from numbnn.nn.activation import check_channels
from numbnn.nn.module import Module


class BatchNorm(Module):
    """y = gamma (x - mu) / sqrt(var + eps) + beta (Ioffe & Szegedy 2015).

    Training uses the batch statistics and updates the running buffers in place with PyTorch's rule
    (running <- (1 - momentum) running + momentum * batch, unbiased variance); eval uses the buffers.
    ``gamma_init=0`` gives PokeBNN's zero-initialised last BN of a bottleneck (the block starts as its
    shortcut).
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5, gamma_init: float = 1.0):
        check_channels(channels)
        self.channels, self.momentum, self.eps = channels, float(momentum), float(eps)
        self.gamma = Tensor(np.full(channels, gamma_init, np.float32), requires_grad=True)
        self.beta = Tensor(np.zeros(channels, np.float32), requires_grad=True)
        self.register_buffer("running_mean", np.zeros(channels, np.float32))
        self.register_buffer("running_var", np.ones(channels, np.float32))

    def forward(self, x):
        return F.batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.channels}, momentum={self.momentum}, eps={self.eps}"
