"""Ops that only move values: concatenation, reshape, transpose, padding, slicing."""

from __future__ import annotations

import math

import numpy as np

from numbnn.inference.ops.base import GraphError, Op, Spec, expect, get_attr, int_attr, int_list, register_op


@register_op
class Concat(Op):
    name = "concat"
    arity = None

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.axis = int_attr(attrs, "axis", self.name, minimum=-64)

    def output_spec(self, specs):
        expect(len(specs) >= 1 and len({s.dtype for s in specs}) == 1, "concat: inputs must share one dtype")
        rank = len(specs[0].shape) + 1
        expect(-rank < self.axis < rank and self.axis % rank != 0, f"concat: bad axis {self.axis}")
        axis = self.axis % rank - 1
        expect(all(len(s.shape) == rank - 1 and s.shape[:axis] + s.shape[axis + 1:] == specs[0].shape[:axis] + specs[0].shape[axis + 1:]
                    for s in specs), "concat: input shapes differ off the concatenation axis")
        shape = list(specs[0].shape)
        shape[axis] = sum(s.shape[axis] for s in specs)
        return Spec(specs[0].dtype, tuple(shape))

    def __call__(self, *xs):
        return np.concatenate(xs, axis=self.axis)


@register_op
class Reshape(Op):
    """New shape; entries {"batch": k} mean k times the batch size (the traced model's x.shape[0])."""

    name = "reshape"

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.shape = []
        entries = get_attr(attrs, "shape", self.name)
        if not isinstance(entries, list):
            raise GraphError(f"reshape: attribute 'shape' must be a list, got {entries!r}")
        for entry in entries:
            if isinstance(entry, dict) and set(entry) == {"batch"} and isinstance(entry["batch"], int) and entry["batch"] >= 1:
                self.shape.append(("batch", entry["batch"]))
            elif isinstance(entry, int) and not isinstance(entry, bool) and entry >= -1:
                self.shape.append(("int", entry))
            else:
                raise GraphError(f"reshape: bad shape entry {entry!r}")
        expect(sum(v == -1 for k, v in self.shape if k == "int") <= 1, "reshape: at most one -1")
        expect(len(self.shape) >= 1 and self.shape[0] == ("batch", 1), "reshape: the first axis must stay the batch")

    def concrete(self, batch):
        return tuple(v * batch if k == "batch" else v for k, v in self.shape)

    def output_spec(self, specs):
        size = math.prod(specs[0].shape)
        rest = [v for _, v in self.shape[1:]]
        known = math.prod(v for v in rest if v != -1)
        expect(all(v != 0 for v in rest) and (size % known == 0 if -1 in rest else size == known),
                f"reshape: cannot reshape {specs[0].shape} to {rest}")
        return Spec(specs[0].dtype, tuple(size // known if v == -1 else v for v in rest))

    def __call__(self, x):
        return x.reshape(self.concrete(x.shape[0]))


@register_op
class Transpose(Op):
    name = "transpose"

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.axes = int_list(get_attr(attrs, "axes", self.name), self.name, "axes")
        expect(sorted(self.axes) == list(range(len(self.axes))) and self.axes[:1] == [0],
                f"transpose: axes must be a permutation keeping the batch first, got {self.axes}")

    def output_spec(self, specs):
        shape = (1,) + specs[0].shape
        expect(len(shape) == len(self.axes), f"transpose: {len(self.axes)} axes for rank {len(shape)}")
        return Spec(specs[0].dtype, tuple(shape[a] for a in self.axes[1:]))

    def __call__(self, x):
        return np.ascontiguousarray(np.transpose(x, self.axes))


@register_op
class Pad(Op):
    name = "pad"

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        widths = get_attr(attrs, "pad_width", self.name)
        expect(isinstance(widths, list) and all(isinstance(p, list) and len(p) == 2 for p in widths),
                "pad: pad_width must be a list of [before, after] pairs")
        self.pad_width = [tuple(int_list(p, self.name, "pad_width")) for p in widths]
        expect(len(self.pad_width) >= 1 and self.pad_width[0] == (0, 0) and min(min(p) for p in self.pad_width) >= 0,
                "pad: widths must be >= 0 and the batch axis unpadded")
        value = get_attr(attrs, "value", self.name)
        expect(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                "pad: value must be a finite number")
        self.value = value

    def output_spec(self, specs):
        expect(len(specs[0].shape) + 1 == len(self.pad_width), "pad: one pair per axis needed")
        return Spec(specs[0].dtype, tuple(s + a + b for s, (a, b) in zip(specs[0].shape, self.pad_width[1:])))

    def __call__(self, x):
        return np.pad(x, self.pad_width, constant_values=self.value)


@register_op
class Slice(Op):
    """x[index] with basic slices only: ``index`` is one [start, stop, step] (null = default) per leading
    axis, the batch axis's being [null, null, null]."""

    name = "slice"

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        index = get_attr(attrs, "index", self.name)
        expect(isinstance(index, list) and len(index) >= 1 and all(
            isinstance(entry, list) and len(entry) == 3
            and all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in entry) for entry in index),
            "slice: index must be a list of [start, stop, step] entries")
        expect(index[0] == [None, None, None], "slice: the batch axis must be taken whole")
        expect(all(entry[2] is None or entry[2] != 0 for entry in index), "slice: a step must not be 0")
        self.index = tuple(slice(*entry) for entry in index)

    def output_spec(self, specs):
        expect(len(self.index) <= len(specs[0].shape) + 1, "slice: more index entries than axes")
        shape = tuple(len(range(*s.indices(n))) for s, n in zip(self.index[1:], specs[0].shape))
        return Spec(specs[0].dtype, shape + specs[0].shape[len(shape):])

    def __call__(self, x):
        return x[self.index]
