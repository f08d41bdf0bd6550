"""Deterministic parameter initialisation.

Every layer constructor takes ``rng=`` (a ``numpy.random.Generator``); without one it draws from this
module's default generator, which :func:`seed` resets. So ``seed(0); build_model()`` gives the same
weights every time, and so does passing ``rng=np.random.default_rng(0)``.
"""

from __future__ import annotations

import math

import numpy as np

_default = np.random.default_rng(0)


def seed(n: int) -> None:
    """Reset the default generator used by layers built without an explicit ``rng``."""
    global _default
    _default = np.random.default_rng(n)


def generator(rng: np.random.Generator | None) -> np.random.Generator:
    """``rng`` itself, or the module's default generator when it is None."""
    return _default if rng is None else rng


def kaiming_normal(shape: tuple, fan_in: int, rng=None, dtype=np.float32) -> np.ndarray:
    """N(0, 2 / fan_in): He et al. 2015's init for layers followed by a ReLU-like non-linearity."""
    return (generator(rng).standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(dtype)


def kaiming_uniform(shape: tuple, fan_in: int, rng=None, dtype=np.float32) -> np.ndarray:
    """U(-b, b) with b = 1/sqrt(fan_in): PyTorch's default for Linear weights and biases."""
    bound = 1.0 / math.sqrt(fan_in)
    return generator(rng).uniform(-bound, bound, size=shape).astype(dtype)


def full(shape: tuple, value: float, dtype=np.float32) -> np.ndarray:
    return np.full(shape, value, dtype=dtype)
