"""Optimizers, weight-decay grouping, learning-rate schedules and gradient clipping.

Optimizers work on anything with ``.data`` (numpy array, updated in place, dtype kept) and ``.grad``.
"""

from numbnn.optim.adam import Adam, AdamW
from numbnn.optim.clip import clip_grad_norm
from numbnn.optim.groups import split_decay
from numbnn.optim.optimizer import Optimizer
from numbnn.optim.schedules import Scheduler, constant, cosine, linear_to_zero, warmup
from numbnn.optim.sgd import SGD

__all__ = [
    "SGD", "Adam", "AdamW", "Optimizer", "Scheduler", "clip_grad_norm", "constant", "cosine",
    "linear_to_zero", "split_decay", "warmup",
]
