"""Adam (L2 weight decay inside the gradient, as ReActNet trains) and AdamW (decoupled weight decay).

Adam (Kingma & Ba 2015, Algorithm 1), step t, g = grad + weight_decay * w:

    m <- b1 m + (1 - b1) g          v <- b2 v + (1 - b2) g^2
    w <- w - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

AdamW (Loshchilov & Hutter 2019) uses the raw gradient for m and v and shrinks the weights directly,
w <- w (1 - lr * weight_decay), before the Adam step, so the decay is not rescaled by 1/sqrt(v).

Both run as one fused parallel pass per parameter (:func:`numbnn.kernels.optim.adam_step`)
instead of about ten numpy passes.
"""

from __future__ import annotations

import math

import numpy as np

from numbnn.errors import InputError
from numbnn.kernels import optim as _optim_kernels
from numbnn.optim.optimizer import Optimizer


class Adam(Optimizer):
    """``Adam(params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)``; decay is L2 added to the gradient."""

    array_state = ("exp_avg", "exp_avg_sq")
    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        if not isinstance(betas, tuple | list):
            raise InputError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        defaults = {"lr": float(lr), "betas": tuple(float(b) for b in betas), "eps": float(eps),
                    "weight_decay": float(weight_decay)}
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        if len(group["betas"]) != 2:
            raise InputError(f"betas must be a pair (beta1, beta2), got {group['betas']!r}")
        for i, beta in enumerate(group["betas"]):
            if not 0.0 <= beta < 1.0:
                raise InputError(f"betas[{i}] must be in [0, 1), got {beta}")
        if not group["eps"] > 0.0:
            raise InputError(f"eps must be > 0, got {group['eps']}")

    def _update(self, data: np.ndarray, grad: np.ndarray, state: dict, group: dict) -> None:
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        if not state:
            state.update(step=0, exp_avg=np.zeros(data.shape, data.dtype), exp_avg_sq=np.zeros(data.shape, data.dtype))
        state["step"] += 1
        step = state["step"]
        shrink = 1.0 - lr * weight_decay if self.decoupled else 1.0
        l2 = 0.0 if self.decoupled else weight_decay
        arrays = (data, state["exp_avg"], state["exp_avg_sq"])
        flat = [a.reshape(-1) for a in arrays]  # views of C-contiguous arrays; else copies, written back below
        _optim_kernels.adam_step(flat[0], np.ascontiguousarray(grad).reshape(-1), flat[1], flat[2], shrink, l2, beta1, beta2,
                         lr / (1.0 - beta1**step), math.sqrt(1.0 - beta2**step), group["eps"])
        for array, values in zip(arrays, flat):
            if not np.shares_memory(array, values):
                array[...] = values.reshape(array.shape)


class AdamW(Adam):
    """``AdamW(params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)``: decoupled weight decay."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
