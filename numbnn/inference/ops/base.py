"""What every inference op shares: the value description, attribute checks, the base class, the registry.

A graph node is ``(op name, attrs, consts)``: JSON-able attributes plus named constant arrays. An op
class parses and validates them in its constructor (raising :class:`GraphError`, which a file loader
reports as a bad file), states its output from its inputs' :class:`Spec` (dtype and per-image shape:
every value carries the batch on axis 0), and runs on numpy arrays. Ops register by name
(:func:`register_op`); :func:`build_op` is the only way a file's op names become code.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from numbnn.checks import check_int
from numbnn.errors import CheckpointError

WORD = 64
OPS: dict[str, type] = {}


class GraphError(CheckpointError):
    """An inference graph (or one of its nodes) is malformed or inconsistent."""


class Spec(NamedTuple):
    """What a value is: numpy dtype name and shape of one image's slice (the batch axis excluded)."""

    dtype: str
    shape: tuple


# -- attribute checks ----------------------------------------------------------------------------------


def get_attr(attrs: dict, key: str, op: str, default=...):
    if key not in attrs:
        if default is ...:
            raise GraphError(f"{op}: missing attribute {key!r}")
        return default
    return attrs[key]


def int_attr(attrs, key, op, minimum=0, default=...):
    return check_int(get_attr(attrs, key, op, default), f"{op}: attribute {key!r}", minimum, error=GraphError)


def pair_attr(attrs, key, op, minimum=0):
    value = get_attr(attrs, key, op)
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in value)):
        raise GraphError(f"{op}: attribute {key!r} must be two integers >= {minimum}, got {value!r}")
    return int(value[0]), int(value[1])


def int_list(value, op, key):
    if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise GraphError(f"{op}: attribute {key!r} must be a list of integers, got {value!r}")
    return [int(v) for v in value]


def const_array(consts: dict, name: str, op: str, dtype, ndim: int | None = None, optional: bool = False):
    array = consts.get(name)
    if array is None:
        if optional:
            return None
        raise GraphError(f"{op}: missing constant {name!r}")
    if array.dtype != np.dtype(dtype):
        raise GraphError(f"{op}: constant {name!r} must be {np.dtype(dtype).name}, got {array.dtype}")
    if ndim is not None and array.ndim != ndim:
        raise GraphError(f"{op}: constant {name!r} must have rank {ndim}, got shape {array.shape}")
    return np.ascontiguousarray(array)


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise GraphError(message)


class Op:
    """Base class: ``arity`` inputs (None: one or more), parsed ``attrs``/``consts``."""

    name = ""
    arity: int | None = 1
    const_names: tuple = ()
    writes_in_place = False  # True: ``op(x, ..., out=x)`` writes the output over x (see graph.Program)

    def __init__(self, attrs: dict, consts: dict):
        unknown = set(consts) - set(self.const_names)
        if unknown:
            raise GraphError(f"{self.name}: unexpected constant(s) {sorted(unknown)}")

    def output_spec(self, specs: list) -> Spec:
        raise NotImplementedError

    def output_specs(self, specs: list) -> list[Spec]:
        """Every value the op writes; an op that writes several returns them as a tuple from ``__call__``."""
        return [self.output_spec(specs)]

    def __call__(self, *xs):
        raise NotImplementedError

    def drop_outputs(self, unread: set) -> None:
        """``unread``: the positions of this node's outputs that no later node reads (:class:`graph.Program`
        tells each op once). An op may then skip writing them and return None in their place; by default
        it writes every output."""

    def _expect_inputs(self, specs, dtypes):
        for i, (spec, dtype) in enumerate(zip(specs, dtypes)):
            if dtype is not None and spec.dtype != dtype:
                raise GraphError(f"{self.name}: input {i} must be {dtype}, got {spec.dtype}")


# -- packing -------------------------------------------------------------------------------------------


def register_op(cls):
    """Class decorator: make the op buildable by its ``name``."""
    OPS[cls.name] = cls
    return cls


def build_op(name: str, attrs: dict, consts: dict) -> Op:
    """The op ``name`` for these attributes and constants; GraphError if anything is wrong."""
    if name not in OPS:
        raise GraphError(f"unknown op {name!r} (known: {', '.join(sorted(OPS))})")
    if not isinstance(attrs, dict):
        raise GraphError(f"{name}: attrs must be an object")
    return OPS[name](attrs, consts)
