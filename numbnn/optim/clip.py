"""Gradient clipping by the global L2 norm (Pascanu et al. 2013): if ||g|| > max_norm, g <- g * max_norm / ||g||."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from numbnn.errors import InputError


def clip_grad_norm(params: Iterable, max_norm: float) -> float:
    """Scale all gradients together so their joint L2 norm is at most ``max_norm``; return the norm before.

    The norm is accumulated in float64. Gradients are replaced by scaled copies (never scaled in place, in
    case autograd shares one array between tensors). A non-finite norm leaves the gradients untouched and
    is returned as is, so the training loop can report divergence.
    """
    if not max_norm > 0.0:
        raise InputError(f"max_norm must be > 0, got {max_norm}")
    with_grad = [p for p in params if p.grad is not None]
    total = math.sqrt(sum(float(np.sum(np.square(p.grad, dtype=np.float64))) for p in with_grad))
    if math.isfinite(total) and total > max_norm:
        coef = max_norm / (total + 1e-6)
        for p in with_grad:
            p.grad = p.grad * coef
    return total
