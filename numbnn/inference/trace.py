"""Record one eval-mode forward pass of a model as a list of op calls with their data flow.

Every op of numbnn's autograd goes through ``Function.apply``, which reports each call to the hook
of :func:`numbnn.autograd.function.trace`. An op input is a *value* if it was computed from the image
batch by an earlier op, else a *constant* (a parameter, a buffer, or something computed from them
only, such as the weight scale alpha = mean|W|).

The forward pass is recorded twice, on random batches of 2 and 3 images, and the two recordings must
agree: same ops in the same order, same constants, the same per-image shapes. An integer argument that
differs is a multiple of the batch size (e.g. the leading dimension of a reshape) and is kept as
:class:`BatchDim`; an array argument (e.g. per-channel STE bounds) must hold the same values in both. A
constant that differs between the recordings was computed from the image outside numbnn's ops, which the
packed model could not reproduce, so it is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numbnn.autograd import Tensor, no_grad
from numbnn.autograd.function import trace
from numbnn.errors import InputError

TRACE_BATCHES = (2, 3)


@dataclass(frozen=True)
class BatchDim:
    """An integer argument equal to ``factor`` times the batch size."""

    factor: int


@dataclass
class TracedOp:
    fn: type  # the Function subclass
    inputs: list  # per input: ("value", id), ("const", ndarray) or None
    kwargs: dict
    output: int  # value id (the input batch is value 0, op k's output is value k + 1)


@dataclass
class Trace:
    ops: list[TracedOp]
    output: int
    values: dict[int, np.ndarray]  # every value of the first recording (batch TRACE_BATCHES[0])
    inputs: tuple[np.ndarray, np.ndarray]  # the two random batches
    outputs: tuple[np.ndarray, np.ndarray]  # the model's outputs on them


def trace_forward(forward, input_shape: tuple, seed: int = 0) -> Trace:
    """Record ``forward`` (a callable Tensor -> Tensor, run under no_grad) on random batches of 2 and 3."""
    rng = np.random.default_rng(seed)
    records = []
    for batch in TRACE_BATCHES:
        x = rng.standard_normal((batch, *input_shape), dtype=np.float32)
        records.append((x, *_record(forward, x)))
    (xa, calls_a, ya), (xb, calls_b, yb) = records
    ops_a, values_a, out_a = _dataflow(calls_a, xa, ya)
    ops_b, values_b, out_b = _dataflow(calls_b, xb, yb)
    ops = _merge(ops_a, ops_b, values_a, values_b)
    if out_a != out_b:
        raise InputError("model: the two traced forward passes return different values")
    return Trace(ops, out_a, values_a, (xa, xb), (ya, yb))


def _record(forward, x):
    calls = []

    def hook(fn, arrays, kwargs, out):
        calls.append((fn, list(arrays), dict(kwargs), out))

    with trace(hook), no_grad():
        y = forward(Tensor(x))
    return calls, np.asarray(y.data if isinstance(y, Tensor) else y)


def _dataflow(calls, x, y):
    """Ops with their inputs resolved to value ids or constants; only ops that depend on x are kept."""
    value_of = {id(x): 0}
    values = {0: x}
    ops = []
    for index, (fn, arrays, kwargs, out) in enumerate(calls):
        inputs = []
        for array in arrays:
            if array is None:
                inputs.append(None)
            elif id(array) in value_of:
                inputs.append(("value", value_of[id(array)]))
            else:
                inputs.append(("const", array))
        if not any(i is not None and i[0] == "value" for i in inputs):
            continue  # computed from parameters only: the array is a constant for later ops
        if not isinstance(out, np.ndarray) or out.ndim == 0 or out.shape[0] != x.shape[0]:
            raise InputError(f"model: {fn.__name__} (op {index}) returns {getattr(out, 'shape', out)!r}, "
                             "which has no leading batch axis; the packed model keeps the batch first")
        vid = index + 1
        value_of[id(out)] = vid
        values[vid] = out
        ops.append(TracedOp(fn, inputs, kwargs, vid))
    if id(y) not in value_of:
        raise InputError("model: its output is not computed by numbnn ops from the input (something outside "
                         "numbnn.functional / Tensor ops produced it), so it cannot be compiled")
    return ops, values, value_of[id(y)]


def _merge(ops_a, ops_b, values_a, values_b):
    batch_a, batch_b = TRACE_BATCHES
    if len(ops_a) != len(ops_b):
        raise InputError("model: its forward pass runs different ops for different inputs")
    merged = []
    for a, b in zip(ops_a, ops_b):
        where = f"{a.fn.__name__} (op {a.output - 1})"
        if a.fn is not b.fn or a.output != b.output or len(a.inputs) != len(b.inputs):
            raise InputError(f"model: {where}: the forward pass differs between inputs")
        for ia, ib in zip(a.inputs, b.inputs):
            same = (ia is None and ib is None) or (ia is not None and ib is not None and ia[0] == ib[0] and (
                ia[1] == ib[1] if ia[0] == "value" else _same_array(ia[1], ib[1])))
            if not same:
                raise InputError(f"model: {where} uses a value that depends on the input but was computed "
                                 "outside numbnn's ops; the packed model cannot reproduce it")
        va, vb = values_a[a.output], values_b[b.output]
        if va.shape[1:] != vb.shape[1:] or va.dtype != vb.dtype:
            raise InputError(f"model: {where}: per-image shape depends on the batch size")
        merged.append(TracedOp(a.fn, a.inputs, _merge_arg(a.kwargs, b.kwargs, batch_a, batch_b, where), a.output))
    return merged


def _same_array(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def _merge_arg(a, b, batch_a, batch_b, where):
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return {key: _merge_arg(a[key], b[key], batch_a, batch_b, where) for key in a}
    if isinstance(a, (list, tuple)) and type(a) is type(b) and len(a) == len(b):
        return type(a)(_merge_arg(x, y, batch_a, batch_b, where) for x, y in zip(a, b))
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)) and not isinstance(a, bool):
        if a == b:
            return int(a)
        if a * batch_b == b * batch_a and a % batch_a == 0 and a > 0:
            return BatchDim(int(a) // batch_a)
    elif isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if _same_array(a, b):  # e.g. per-channel STE bounds, copied by each call
            return a
    elif a is b or (type(a) is type(b) and a == b):
        return a
    raise InputError(f"model: {where}: argument {a!r} vs {b!r} changes with the input in a way the packed "
                     "model cannot follow")
