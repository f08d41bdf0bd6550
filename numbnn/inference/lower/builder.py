"""The graph under construction (:class:`Builder`) and the checks every lowering rule makes of its
inputs: computed from the image, a constant parameter, or one float32 value per channel."""

from __future__ import annotations

import numpy as np

from numbnn.errors import InputError
from numbnn.inference.graph import Node
from numbnn.inference.ops import Spec, build_op


class Builder:
    """Graph under construction: emits nodes and knows every value's spec."""

    def __init__(self, input_spec: Spec):
        self.nodes: list[Node] = []
        self.specs = {0: input_spec}
        self.next_value = 1

    def emit(self, op: str, inputs: list[int], attrs: dict | None = None, consts: dict | None = None) -> int:
        attrs, consts = attrs or {}, {k: v for k, v in (consts or {}).items() if v is not None}
        spec = build_op(op, attrs, consts).output_spec([self.specs[v] for v in inputs])
        value = self.next_value
        self.next_value += 1
        self.nodes.append(Node(op, list(inputs), value, attrs, consts))
        self.specs[value] = spec
        return value

    def stages(self, x: int, steps: list, other: int | None = None) -> int:
        """An elementwise node: ``steps`` = [(name, [per-channel float32 vectors])]."""
        channels = self.specs[x].shape[-1]
        rows = [np.broadcast_to(p, (channels,)).astype(np.float32) for _, params in steps for p in params]
        params = np.stack(rows) if rows else np.zeros((0, channels), np.float32)
        inputs = [x] if other is None else [x, other]
        return self.emit("elementwise", inputs, {"stages": [name for name, _ in steps]}, {"params": params})


def value_input(entry, what: str) -> int:
    if entry is None or entry[0] != "value":
        raise InputError(f"model: {what} must be computed from the input")
    return entry[1]


def const_input(entry, what: str):
    if entry is None:
        return None
    if entry[0] != "const":
        raise InputError(f"model: {what} must be a constant (parameter), not computed from the input")
    return np.asarray(entry[1])


def per_channel(array: np.ndarray, out_shape: tuple) -> np.ndarray | None:
    """``array`` as one float32 value per channel if it broadcasts that way onto [N, *out_shape], else None."""
    if array.dtype != np.float32 or array.ndim > len(out_shape) + 1:
        return None
    if any(s != 1 for s in array.shape[:-1]) or (array.ndim and array.shape[-1] not in (1, out_shape[-1])):
        return None
    return np.broadcast_to(array.reshape(-1)[-1:] if array.size == 1 else array.reshape(-1), (out_shape[-1],))
