"""Lowering rules of pooling, reductions and the shape ops (concatenation, reshape, transpose, padding,
slicing, channel shuffle and gate): the packed ops of the same names, the batch axis kept whole."""

from __future__ import annotations

import numpy as np

from numbnn.autograd import arithmetic, shape_ops
from numbnn.errors import InputError
from numbnn.functional import pooling, shape
from numbnn.inference.lower import elementwise
from numbnn.inference.lower.builder import value_input
from numbnn.inference.trace import BatchDim
from numbnn.kernels._checks import as_pair


def _pool(op: str):
    def rule(b, inputs, kw, out):
        x = value_input(inputs[0], f"{op} input")
        kernel = as_pair(kw["kernel_size"], "kernel_size", 1)
        stride = kernel if kw["stride"] is None else as_pair(kw["stride"], "stride", 1)
        padding = kw["padding"]
        padding = "same" if isinstance(padding, str) else list(as_pair(padding, "padding", 0))
        return b.emit(op, [x], {"kernel_size": list(kernel), "stride": list(stride), "padding": padding})

    return rule


def _reduce(fn: str):
    def rule(b, inputs, kw, out):
        x = value_input(inputs[0], f"{fn} input")
        axis = kw.get("axis")
        if axis is None:
            raise InputError(f"model: {fn} over all axes would mix the images of a batch")
        axis = [int(axis)] if np.isscalar(axis) else [int(a) for a in axis]
        return b.emit("reduce", [x], {"fn": fn, "axis": axis, "keepdims": bool(kw.get("keepdims", False))})

    return rule


def _concat(b, inputs, kw, out):
    values = [value_input(entry, "concatenated input") for entry in inputs]
    return b.emit("concat", values, {"axis": int(kw["axis"])})


def _reshape(b, inputs, kw, out):
    shape = [{"batch": s.factor} if isinstance(s, BatchDim) else int(s) for s in kw["shape"]]
    return b.emit("reshape", [value_input(inputs[0], "reshape input")], {"shape": shape})


def _transpose(b, inputs, kw, out):
    if kw["axes"] is None:
        raise InputError("model: a full transpose would move the batch axis")
    return b.emit("transpose", [value_input(inputs[0], "transpose input")], {"axes": [int(a) for a in kw["axes"]]})


def _channel_shuffle(b, inputs, kw, out):
    """The reshape-transpose-reshape that a channel shuffle is: the movement fusion reads that chain
    as one gather (and a binary conv producing its input packs in the shuffled order)."""
    x = value_input(inputs[0], "channel shuffle input")
    shape, groups = list(b.specs[x].shape), int(kw["groups"])
    split = b.emit("reshape", [x], {"shape": [{"batch": 1}, *shape[:-1], groups, shape[-1] // groups]})
    axes = list(range(len(shape) + 2))
    axes[-2], axes[-1] = axes[-1], axes[-2]
    moved = b.emit("transpose", [split], {"axes": axes})
    return b.emit("reshape", [moved], {"shape": [{"batch": 1}, *shape]})


def _move_blocks(b, inputs, kw, out):
    """Space-to-depth (or its inverse) as the reshape-transpose-reshape it is: the movement fusion reads
    the chain as one gather (RB-Net's reshaped convs), as it did when the model wrote it out."""
    to_depth = bool(kw["to_depth"])
    x = value_input(inputs[0], "space-to-depth input" if to_depth else "depth-to-space input")
    h, w, c = b.specs[x].shape
    k = int(kw["block"])
    if to_depth:
        split, merged = [h // k, k, w // k, k, c], [h // k, w // k, k * k * c]
    else:
        split, merged = [h, w, k, k, c // (k * k)], [h * k, w * k, c // (k * k)]
    blocks = b.emit("reshape", [x], {"shape": [{"batch": 1}, *split]})
    moved = b.emit("transpose", [blocks], {"axes": [0, 1, 3, 2, 4, 5]})
    return b.emit("reshape", [moved], {"shape": [{"batch": 1}, *merged]})


def _channel_gate(b, inputs, kw, out):
    """x times a per-image channel gate: the gate reshaped to [N, 1, .., 1, C] and the ``mul_input`` step
    of the broadcast product it equals."""
    x, gate = value_input(inputs[0], "gated input"), value_input(inputs[1], "channel gate")
    ones = [1] * (len(b.specs[x].shape) - 1)
    spread = b.emit("reshape", [gate], {"shape": [{"batch": 1}, *ones, b.specs[gate].shape[-1]]})
    return elementwise.RULES[arithmetic.Mul](b, [("value", x), ("value", spread)], {}, out)


def _pad(b, inputs, kw, out):
    return b.emit("pad", [value_input(inputs[0], "pad input")],
                  {"pad_width": [[int(x), int(y)] for x, y in kw["pad_width"]], "value": float(kw["value"])})


def _getitem(b, inputs, kw, out):
    """Basic slicing (e.g. RB-Net's cyclic shifts and crops); the batch axis must stay whole."""
    index = kw["index"] if isinstance(kw["index"], tuple) else (kw["index"],)
    if not all(isinstance(s, slice) for s in index) or not index or index[0] != slice(None):
        raise InputError(f"model: indexing with {kw['index']!r}; packed inference supports slices that keep the batch whole")
    entries = [[s.start, s.stop, s.step] for s in index]
    if any(isinstance(v, BatchDim) or not (v is None or isinstance(v, int)) for e in entries for v in e):
        raise InputError(f"model: slice bounds {kw['index']!r} must be plain integers")
    return b.emit("slice", [value_input(inputs[0], "sliced input")], {"index": entries})


def _roll(b, inputs, kw, out):
    """np.roll as the two slices and the concatenation it equals (x[-s:] then x[:-s] along the axis), so
    the movement fusion reads it as one gather, as it read RB-Net's shifts written that way."""
    x = value_input(inputs[0], "rolled input")
    shape, axis = b.specs[x].shape, int(kw["axis"]) - 1  # the spec has no batch axis
    step = int(kw["shift"]) % shape[axis]
    if step == 0:
        return x
    whole = [[None, None, None] for _ in range(len(shape) + 1)]
    head, tail = [list(e) for e in whole], [list(e) for e in whole]
    head[axis + 1], tail[axis + 1] = [shape[axis] - step, None, None], [None, shape[axis] - step, None]
    parts = [b.emit("slice", [x], {"index": head}), b.emit("slice", [x], {"index": tail})]
    return b.emit("concat", parts, {"axis": axis + 1})


RULES = {
    shape_ops.Mean: _reduce("mean"),
    shape_ops.Sum: _reduce("sum"),
    shape_ops.Max: _reduce("max"),
    shape_ops.Reshape: _reshape,
    shape_ops.GetItem: _getitem,
    shape_ops.Transpose: _transpose,
    pooling.AvgPool2d: _pool("avg_pool"),
    pooling.MaxPool2d: _pool("max_pool"),
    shape.ChannelGate: _channel_gate,
    shape.ChannelShuffle: _channel_shuffle,
    shape.Concat: _concat,
    shape.Pad: _pad,
    shape.Roll: _roll,
    shape.SpaceDepthMove: _move_blocks,
}
