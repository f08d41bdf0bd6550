"""The base class every optimizer shares: parameter groups, per-parameter state, (de)serialisation.

An optimizer holds ``param_groups``, a list of dicts like PyTorch's: ``{"params": [Tensor, ...], "lr": ...,
"weight_decay": ..., ...}``. Hyper-parameters a group leaves out are taken from the constructor's
defaults, so one optimizer can give conv weights weight decay and BN/bias/activation parameters none
(see :func:`numbnn.optim.split_decay`).

Updates are in place on ``param.data`` and keep its dtype: every hyper-parameter is stored as a Python
``float``/``int``/``bool`` (never a numpy scalar, which would upcast float32 arithmetic to float64 under
numpy's promotion rules), and per-parameter state arrays have the parameter's dtype.
"""

from __future__ import annotations

import numpy as np

from numbnn.errors import CheckpointError, InputError


class Optimizer:
    """Subclasses set ``defaults`` via ``__init__`` and implement ``_update(param, grad, state, group)``.

    ``array_state`` names the per-parameter state entries that are arrays shaped like the parameter;
    every other entry is a Python scalar (e.g. Adam's step count).
    """

    array_state: tuple[str, ...] = ()

    def __init__(self, params, defaults: dict):
        self.defaults = {key: _plain(value) for key, value in defaults.items()}
        self.param_groups: list[dict] = []
        self._state: dict[int, dict] = {}  # keyed by id(param): Tensors need not be hashable
        groups = list(params)
        if not groups:
            raise InputError("params: the optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        seen: set[int] = set()
        for group in groups:
            self._add_group(group, seen)

    def _add_group(self, group: dict, seen: set[int]) -> None:
        if not isinstance(group, dict) or "params" not in group:
            raise InputError("params: mix of Tensors and group dicts; every group needs a 'params' list")
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise InputError(f"params: unknown group option(s) {sorted(unknown)}; known: {sorted(self.defaults)}")
        params = list(group["params"])
        for p in params:
            if not hasattr(p, "data") or not hasattr(p, "grad"):
                raise InputError(f"params: expected Tensors, got {type(p).__name__}")
            if id(p) in seen:
                raise InputError("params: a parameter appears in more than one group")
            seen.add(id(p))
        try:  # every hyper-parameter takes its default's Python type (an int lr becomes a float)
            full = {key: _like(default, group.get(key, default)) for key, default in self.defaults.items()}
        except (TypeError, ValueError) as err:
            raise InputError(f"params: a group option has the wrong type ({err})") from None
        self._validate(full)
        self.param_groups.append({"params": params, **full})

    def _validate(self, group: dict) -> None:
        """Check one group's hyper-parameters; raise InputError naming the bad one."""
        if not group["lr"] >= 0.0:
            raise InputError(f"lr must be >= 0, got {group['lr']}")
        if not group["weight_decay"] >= 0.0:
            raise InputError(f"weight_decay must be >= 0, got {group['weight_decay']}")

    # -- learning rate ------------------------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The first group's learning rate (schedules scale every group's own base rate)."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        for group in self.param_groups:
            group["lr"] = float(value)

    # -- stepping ------------------------------------------------------------------------------------
    def parameters(self):
        """All parameters in group order (the order state_dict indices refer to)."""
        for group in self.param_groups:
            yield from group["params"]

    def zero_grad(self) -> None:
        """Drop every parameter's gradient (autograd then starts accumulating afresh)."""
        for p in self.parameters():
            p.grad = None

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = np.asarray(p.grad)
                if grad.shape != p.data.shape:
                    raise InputError(f"grad of a parameter has shape {grad.shape}, parameter {p.data.shape}")
                self._update(p.data, grad.astype(p.data.dtype, copy=False), self._state.setdefault(id(p), {}), group)

    def _update(self, data: np.ndarray, grad: np.ndarray, state: dict, group: dict) -> None:
        raise NotImplementedError

    # -- (de)serialisation --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """A nested dict of numpy arrays and scalars (HDF5-friendly, string keys), fully copied.

        ``{"groups": {"0": {hyper-parameters}, ...}, "state": {"<flat param index>": {name: value}}}``.
        """
        groups = {}
        for gi, group in enumerate(self.param_groups):
            entry = {key: _storable(value) for key, value in group.items() if key != "params"}
            entry["num_params"] = len(group["params"])
            groups[str(gi)] = entry
        state = {}
        for index, p in enumerate(self.parameters()):
            param_state = self._state.get(id(p))
            if param_state:
                state[str(index)] = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in param_state.items()}
        return {"groups": groups, "state": state}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and per-parameter state; the parameter layout must match exactly."""
        try:
            groups, state = state_dict["groups"], state_dict["state"]
        except (KeyError, TypeError):
            raise CheckpointError("optimizer state: expected keys 'groups' and 'state'") from None
        if len(groups) != len(self.param_groups):
            raise CheckpointError(
                f"optimizer state: {len(groups)} parameter groups saved, optimizer has {len(self.param_groups)}"
            )
        new_groups = []
        for gi, group in enumerate(self.param_groups):
            saved = groups[str(gi)]
            if int(saved.get("num_params", -1)) != len(group["params"]):
                raise CheckpointError(
                    f"optimizer state: group {gi} saved {saved.get('num_params')} parameters, "
                    f"has {len(group['params'])}"
                )
            restored = dict(group)
            for key, default in self.defaults.items():
                if key not in saved:
                    raise CheckpointError(f"optimizer state: group {gi} lacks hyper-parameter {key!r}")
                restored[key] = _like(default, saved[key])
            new_groups.append(restored)
        params = list(self.parameters())
        new_state: dict[int, dict] = {}
        for key, saved in state.items():
            index = int(key)
            if not 0 <= index < len(params):
                raise CheckpointError(f"optimizer state: parameter index {index} out of range ({len(params)} params)")
            data = params[index].data
            entry = {}
            for name, value in saved.items():
                if name not in self.array_state:
                    entry[name] = _plain(np.asarray(value).item() if isinstance(value, np.ndarray) else value)
                else:
                    if np.shape(value) != data.shape:
                        raise CheckpointError(
                            f"optimizer state: {name!r} of parameter {index} has shape {np.shape(value)}, "
                            f"parameter has {data.shape}"
                        )
                    entry[name] = np.array(value, dtype=data.dtype, copy=True)
            new_state[id(params[index])] = entry
        self.param_groups = new_groups
        self._state = new_state


def _plain(value):
    """numpy scalars -> Python scalars (keeps float32 updates float32), tuples stay tuples."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return tuple(_plain(v) for v in value)
    return value


def _storable(value):
    """Group hyper-parameter -> something HDF5 can hold (tuples become float64 arrays)."""
    return np.asarray(value, dtype=np.float64) if isinstance(value, tuple) else value


def _like(default, saved):
    """Convert a saved hyper-parameter back to the Python type of the optimizer's default."""
    if isinstance(default, tuple):
        return tuple(float(v) for v in np.asarray(saved).ravel())
    if isinstance(default, bool):
        return bool(saved)
    if isinstance(default, int):
        return int(saved)
    return float(saved)
