"""Batch normalisation over every axis but the last (channels), for NHWC maps and [N, C] features,
:func:`norm_add_activation`, a BNN block's BN + residual + RPReLU as one fused op on those modules, and
:func:`norm_activation_add`, the same op with the residual added after the activation."""

from __future__ import annotations

import numpy as np

import numbnn.functional as F
from numbnn.autograd import Tensor
from numbnn.errors import InputError
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


def norm_add_activation(norm, x, residual, activation, *, add_after: bool = False, residual_copies: int = 1) -> Tensor:
    """``activation(norm(x) + residual)`` as one fused op (:func:`numbnn.functional.batch_norm_add_dprelu`),
    equal to that chain of the three modules bit for bit, ``norm``'s running statistics included.

    ``activation`` is a :class:`~numbnn.nn.PReLU`, :class:`~numbnn.nn.RPReLU` or :class:`~numbnn.nn.DPReLU`
    (anything with ``dprelu_params()``). ``norm`` and ``x`` may be lists (parts):
    ``activation(concat([norm_k(x_k) + residual for each k]))``, ReActNet's duplicated 1x1 branches, without
    the concatenation. The modules keep their parameters and names: only the computation is fused.
    ``add_after``: ``activation(norm(x)) + residual`` instead (:func:`norm_activation_add`).
    ``residual_copies`` R: ``activation(norm(x) + concat([residual] * R))`` without the concatenation (a
    shortcut repeating its channels to the block's width).
    """
    norms, xs = (list(norm), list(x)) if isinstance(norm, (list, tuple)) else ([norm], [x])
    first = norms[0]
    if any((n.training, n.momentum, n.eps) != (first.training, first.momentum, first.eps) for n in norms):
        raise InputError("norm_add_activation: the parts' batch norms differ in mode, momentum or eps")
    stats = [[getattr(n, name) for n in norms] for name in ("gamma", "beta", "running_mean", "running_var")]
    if not isinstance(norm, (list, tuple)):
        xs, stats = xs[0], [values[0] for values in stats]
    return F.batch_norm_add_dprelu(xs, residual, *stats, first.training, *activation.dprelu_params(),
                                   momentum=first.momentum, eps=first.eps, add_after=add_after,
                                   residual_copies=residual_copies)


def norm_activation_add(norm, x, activation, residual) -> Tensor:
    """``activation(norm(x)) + residual`` as one fused op, bit for bit that chain (FTBNN's unit, whose
    FPReLU comes before the shortcut's add); see :func:`norm_add_activation`."""
    return norm_add_activation(norm, x, residual, activation, add_after=True)
