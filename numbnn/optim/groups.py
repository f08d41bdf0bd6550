"""Which parameters get weight decay: split a model's named parameters into two optimizer groups.

The papers disagree, so the rule is a choice:

- ``"conv_only"`` (ReActNet): only 4-D conv kernels decay; BN, biases, PReLU/RPReLU/RSign shifts and the
  final FC get none. (ReActNet's code tests ``ndim == 4 or 'conv' in name``; numbnn's conv kernels,
  binary ones included, are 4-D OHWI arrays, so ``ndim == 4`` is that rule.)
- ``"ndim>1"`` (PokeBNN's L2 on every parameter with ndim > 1): conv kernels and dense matrices.
- ``"all"``: every parameter.
- a callable ``rule(name, param) -> bool`` for anything else (e.g. a name-based exclusion).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from numbnn.errors import InputError

_RULES: dict[str, Callable] = {
    "conv_only": lambda name, p: p.data.ndim == 4,
    "ndim>1": lambda name, p: p.data.ndim > 1,
    "all": lambda name, p: True,
}


def split_decay(named_params: Iterable, weight_decay: float, rule="conv_only") -> list[dict]:
    """Return ``[{"params": decayed, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]``.

    ``named_params`` is an iterable of ``(name, Tensor)``, e.g. ``model.named_parameters()``. Both groups
    are always present (possibly empty), so an optimizer's state layout does not depend on the model.
    """
    if callable(rule):
        decays = rule
    elif rule in _RULES:
        decays = _RULES[rule]
    else:
        raise InputError(f"rule must be one of {sorted(_RULES)} or a callable(name, param), got {rule!r}")
    if not weight_decay >= 0.0:
        raise InputError(f"weight_decay must be >= 0, got {weight_decay}")
    decayed, rest = [], []
    for name, param in named_params:
        (decayed if decays(name, param) else rest).append(param)
    return [{"params": decayed, "weight_decay": float(weight_decay)}, {"params": rest, "weight_decay": 0.0}]
