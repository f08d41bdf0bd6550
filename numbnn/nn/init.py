"""Deterministic parameter initialisation.

Every layer constructor takes ``rng=`` (a ``numpy.random.Generator``); without one it draws from this
module's default generator, which :func:`seed` resets. So ``seed(0); build_model()`` gives the same
weights every time, and so does passing ``rng=np.random.default_rng(0)``.
"""

from __future__ import annotations

import math

import numpy as np

from numbnn.errors import InputError

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


# Initial latent weights of every binary layer: the layer's usual Kaiming draw times this factor. Only a latent
# weight's sign reaches the forward pass, and Adam moves every weight by about lr per step, so the
# latent scale sets how many steps a sign flip takes: at Kaiming scale (std sqrt(2 / fan_in), 0.04
# for a 3x3 conv of 128 channels) about 20 steps of lr 2e-3, at a tenth of it about 2. On 3 x 20,000
# image proxies of reactnet-a (lr 2e-3, batch 64) this took test accuracy from 78.4% to 85.2%
# (numbnn/models/reactnet.py's recipe); benchmarks/results/proxies-*.json has the other models.
BINARY_LATENT_INIT = 0.1


def scale_latent(weight: np.ndarray, latent_init: float) -> None:
    """Scale a binary layer's freshly drawn Kaiming weights by ``latent_init`` in place (see BINARY_LATENT_INIT)."""
    if isinstance(latent_init, bool) or not isinstance(latent_init, (int, float)) or not 0 < latent_init <= 1:
        raise InputError(f"latent_init must be a number in (0, 1], got {latent_init!r}")
    weight *= np.float32(latent_init)
