"""``Module``: the base of every layer and model: registration, traversal, modes and state dicts.

Assigning an attribute registers it: a :class:`Tensor` that requires grad becomes a *parameter*, a
``Module`` becomes a *child*; ``register_buffer`` adds a numpy array that is saved with the model but
not trained (e.g. BatchNorm's running statistics). Registration happens at assignment, so freezing a
parameter later (``requires_grad = False``) keeps it in ``parameters()`` and in the state dict.
Names are dotted paths (``"blocks.0.conv.weight"``) in assignment order; they are the keys of
``state_dict()`` and of the HDF5 checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from numbnn.autograd import Tensor
from numbnn.errors import CheckpointError, InputError

_PARAM, _MODULE, _BUFFER = "parameter", "module", "buffer"


class Module:
    """Subclasses assign their parameters/children in ``__init__`` and implement ``forward``."""

    training = True

    def __setattr__(self, name: str, value) -> None:
        kinds = self.__dict__.setdefault("_kinds", {})
        if isinstance(value, Tensor) and value.requires_grad:
            kinds[name] = _PARAM
        elif isinstance(value, Module):
            kinds[name] = _MODULE
        elif kinds.get(name) == _BUFFER and isinstance(value, np.ndarray):
            pass
        else:
            kinds.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self.__dict__.get("_kinds", {}).pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array: np.ndarray) -> None:
        """Keep ``array`` as attribute ``name``, saved in the state dict but not a parameter."""
        if not isinstance(array, np.ndarray):
            raise InputError(f"buffer {name!r} must be a numpy array, got {type(array).__name__}")
        self.__dict__.setdefault("_kinds", {})[name] = _BUFFER
        object.__setattr__(self, name, array)

    def _own(self, kind: str) -> Iterator[tuple[str, object]]:
        for name, k in self.__dict__.get("_kinds", {}).items():
            if k == kind:
                yield name, self.__dict__[name]

    # -- running --------------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and every descendant (BatchNorm uses batch statistics)."""
        for _, module in self.named_modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Inference mode: BatchNorm uses its running statistics."""
        return self.train(False)

    # -- traversal ------------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module (name ``prefix``) and every descendant, depth first, each once."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child}" if name else child, m) for child, m in module._own(_MODULE)]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def children(self) -> Iterator[Module]:
        for _, module in self._own(_MODULE):
            yield module

    def _named(self, kind: str):
        seen: set[int] = set()
        for path, module in self.named_modules():
            for name, value in module._own(kind):
                if id(value) not in seen:  # a shared tensor/array is listed once, under its first path
                    seen.add(id(value))
                    yield (f"{path}.{name}" if path else name), value

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        yield from self._named(_PARAM)

    def parameters(self) -> Iterator[Tensor]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        yield from self._named(_BUFFER)

    def buffers(self) -> Iterator[np.ndarray]:
        for _, b in self.named_buffers():
            yield b

    def num_parameters(self) -> int:
        """Number of scalar parameters (frozen ones included)."""
        return sum(p.data.size for p in self.parameters())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    # -- state dicts ----------------------------------------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        """The live arrays behind the state dict (parameters' data and buffers), by dotted path."""
        state = {name: p.data for name, p in self.named_parameters()}
        state.update(self.named_buffers())
        return state

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter's data and every buffer, keyed by dotted path."""
        return {name: array.copy() for name, array in self._state_arrays().items()}

    def load_state_dict(self, state_dict, strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy arrays into the existing parameters and buffers (in place, keeping their dtypes).

        Nothing is changed unless every check passes: a shape mismatch is always an error; missing or
        unexpected keys are errors when ``strict``. Returns ``(missing, unexpected)`` key lists.
        """
        targets = self._state_arrays()
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        values = {}
        for key, target in targets.items():
            if key in state_dict:
                values[key] = np.asarray(state_dict[key])
                if values[key].shape != target.shape:
                    problems.append(f"{key}: shape {values[key].shape} in the checkpoint, {target.shape} in the model")
        if problems:
            raise CheckpointError(f"cannot load state into {type(self).__name__}: " + "; ".join(problems))
        for key, value in values.items():
            targets[key][...] = value
        return missing, unexpected

    # -- printing -------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The constructor arguments worth printing, e.g. ``"3, 16, kernel_size=3"``."""
        return ""

    def __repr__(self) -> str:
        children = list(self._own(_MODULE))
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [head]
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


class ModuleList(Module):
    """A list of child modules, registered under the names "0", "1", ..."""

    def __init__(self, modules=()):
        self._length = 0
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise InputError(f"{type(self).__name__} holds Modules, got {type(module).__name__}")
        setattr(self, str(self._length), module)
        self._length += 1
        return self

    def extend(self, modules) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[Module]:
        return (getattr(self, str(i)) for i in range(self._length))

    def __getitem__(self, index: int) -> Module:
        if not -self._length <= index < self._length:
            raise IndexError(f"index {index} out of range for {type(self).__name__} of length {self._length}")
        return getattr(self, str(index % self._length))


class Sequential(ModuleList):
    """Applies its modules in order: ``Sequential(a, b, c)(x) == c(b(a(x)))``."""

    def __init__(self, *modules: Module):
        super().__init__(modules)

    def forward(self, x):
        for module in self:
            x = module(x)
        return x
