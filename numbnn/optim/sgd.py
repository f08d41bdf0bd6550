"""Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

Per step, with g = grad + weight_decay * w (L2 folded into the gradient):

    b <- g                    on the first step (the buffer starts as the gradient, as in PyTorch)
    b <- momentum * b + g     afterwards
    d = g + momentum * b      if nesterov, else d = b   (d = g when momentum is 0)
    w <- w - lr * d
"""

from __future__ import annotations

import numpy as np

from numbnn.errors import InputError
from numbnn.optim.optimizer import Optimizer


class SGD(Optimizer):
    """``SGD(params, lr, momentum=0, nesterov=False, weight_decay=0)``; params: Tensors or group dicts."""

    array_state = ("momentum_buffer",)

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        defaults = {"lr": float(lr), "momentum": float(momentum), "nesterov": bool(nesterov),
                    "weight_decay": float(weight_decay)}
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        if not group["momentum"] >= 0.0:
            raise InputError(f"momentum must be >= 0, got {group['momentum']}")
        if group["nesterov"] and group["momentum"] == 0.0:
            raise InputError("nesterov=True needs momentum > 0")

    def _update(self, data: np.ndarray, grad: np.ndarray, state: dict, group: dict) -> None:
        weight_decay, momentum = group["weight_decay"], group["momentum"]
        direction = grad + weight_decay * data if weight_decay else grad
        if momentum:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = direction.copy()
            else:
                buffer *= momentum
                buffer += direction
            direction = direction + momentum * buffer if group["nesterov"] else buffer
        data -= group["lr"] * direction
