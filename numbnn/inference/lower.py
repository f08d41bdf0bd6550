"""Turn a recorded forward pass (:mod:`numbnn.inference.trace`) into a graph of inference ops.

One rule per autograd Function; each rule emits the ops that compute exactly what the Function's
forward computes in eval mode, with the constants it needs prepared once:

- ``BinaryConv2d`` / ``BinaryLinear`` -> ``pack`` (signs of the input), ``bconv`` / ``bdense`` with the
  weights packed once, and an ``elementwise`` "mul alpha" step (the float model multiplies the exact
  integer result by alpha in float32, and so does this);
- batch norm in eval mode -> an ``affine`` step with the float model's own float32 scale and shift;
- per-channel element-wise Functions (bias, RSign's subtraction, DPReLU/RPReLU/FPReLU, ReLU, hard
  sigmoid, fake quantization, signs, residual adds and gates) -> one-step ``elementwise`` nodes, which
  :mod:`numbnn.inference.fuse` then merges and folds;
- float convolutions, linear layers, pooling, reductions and shape ops -> the ops of the same names.

A Function without a rule stops compilation with an error that names it.
"""

from __future__ import annotations

import numpy as np

from numbnn.autograd import basic_ops
from numbnn.errors import InputError
from numbnn.functional import activations, binary, conv, norm, pooling, quantizers, shape
from numbnn.functional.linear import Linear as LinearFunction
from numbnn.inference.graph import Graph, Node
from numbnn.inference.ops import Spec, build_op
from numbnn.inference.trace import BatchDim, Trace
from numbnn.kernels import pack_bits, pack_conv_weight
from numbnn.kernels._checks import as_pair


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


def lower(trace: Trace, input_spec: Spec) -> Graph:
    """The graph computing ``trace``'s output from value 0 (see the module docstring)."""
    builder = Builder(input_spec)
    value_map = {0: 0}
    for op in trace.ops:
        rule = RULES.get(op.fn)
        if rule is None:
            raise InputError(f"model: op {op.fn.__module__}.{op.fn.__qualname__} has no packed-inference rule "
                             "(numbnn.inference.lower.RULES)")
        inputs = [None if i is None else (("value", value_map[i[1]]) if i[0] == "value" else i) for i in op.inputs]
        out = trace.values[op.output]
        value_map[op.output] = rule(builder, inputs, op.kwargs, out)
        got = builder.specs[value_map[op.output]]
        if got != Spec(out.dtype.name, out.shape[1:]):
            raise InputError(f"model: {op.fn.__name__}: compiled op gives {got}, the model {out.dtype} {out.shape[1:]}")
    return Graph(builder.nodes, 0, value_map[trace.output], input_spec)


# -- helpers -------------------------------------------------------------------------------------------


def _value(entry, what: str) -> int:
    if entry is None or entry[0] != "value":
        raise InputError(f"model: {what} must be computed from the input")
    return entry[1]


def _const(entry, what: str):
    if entry is None:
        return None
    if entry[0] != "const":
        raise InputError(f"model: {what} must be a constant (parameter), not computed from the input")
    return np.asarray(entry[1])


def _per_channel(array: np.ndarray, out_shape: tuple) -> np.ndarray | None:
    """``array`` as one float32 value per channel if it broadcasts that way onto [N, *out_shape], else None."""
    if array.dtype != np.float32 or array.ndim > len(out_shape) + 1:
        return None
    if any(s != 1 for s in array.shape[:-1]) or (array.ndim and array.shape[-1] not in (1, out_shape[-1])):
        return None
    return np.broadcast_to(array.reshape(-1)[-1:] if array.size == 1 else array.reshape(-1), (out_shape[-1],))


def _broadcasts_as_other(other: Spec, x: Spec) -> bool:
    """Can ``other`` be the second input of an elementwise node on ``x`` (same rows or per image, channels repeat)."""
    if other.dtype != "float32" or len(other.shape) != len(x.shape) or not x.shape:
        return False
    rows_ok = other.shape[:-1] == x.shape[:-1] or all(s == 1 for s in other.shape[:-1])
    return rows_ok and x.shape[-1] % other.shape[-1] == 0


def _ufunc(b: Builder, fn: str, inputs) -> int:
    values, operands, consts = [], [], {}
    for entry, name in zip(inputs, ("a", "b")):
        if entry[0] == "value":
            operands.append(f"input:{len(values)}")
            values.append(entry[1])
        else:
            operands.append(f"const:{name}")
            consts[name] = np.asarray(entry[1])
    return b.emit("ufunc", values, {"fn": fn, "operands": operands}, consts)


def _geometry(kwargs) -> dict:
    return {"stride": list(as_pair(kwargs["stride"], "stride", 1)), "padding": list(as_pair(kwargs["padding"], "padding", 0)),
            "dilation": list(as_pair(kwargs["dilation"], "dilation", 1)), "groups": int(kwargs["groups"])}


# -- rules ---------------------------------------------------------------------------------------------


def _binary_conv(b, inputs, kw, out):
    x = _value(inputs[0], "a binary convolution's input")
    w, scale = _const(inputs[1], "binary conv weight"), _const(inputs[2], "binary conv scale")
    geometry = _geometry(kw)
    packed = b.emit("pack", [x], {"groups": geometry["groups"]})
    acc = b.emit("bconv", [packed], {**geometry, "in_channels": b.specs[x].shape[-1], "pad_value": int(kw["pad_value"])},
                 {"weight": pack_conv_weight(w)})
    return b.stages(acc, [] if scale is None else [("mul", [_scale_vector(scale, out)])])


def _binary_linear(b, inputs, kw, out):
    x = _value(inputs[0], "a binary linear layer's input")
    w, scale = _const(inputs[1], "binary linear weight"), _const(inputs[2], "binary linear scale")
    packed = b.emit("pack", [x], {"groups": 1})
    acc = b.emit("bdense", [packed], {"in_features": int(w.shape[1])}, {"weight": pack_bits(w)})
    return b.stages(acc, [] if scale is None else [("mul", [_scale_vector(scale, out)])])


def _scale_vector(scale, out):
    vector = _per_channel(scale, out.shape[1:])
    if vector is None:
        raise InputError(f"model: binary layer scale of shape {scale.shape} {scale.dtype} is not one float32 per channel")
    return vector


def _float_conv(b, inputs, kw, out):
    x = _value(inputs[0], "a convolution's input")
    weight, bias = _const(inputs[1], "conv weight"), _const(inputs[2], "conv bias")
    return b.emit("conv2d", [x], _geometry(kw), {"weight": weight, "bias": bias})


def _linear(b, inputs, kw, out):
    x = _value(inputs[0], "a linear layer's input")
    return b.emit("linear", [x], {}, {"weight": _const(inputs[1], "linear weight"), "bias": _const(inputs[2], "linear bias")})


def _batch_norm(b, inputs, kw, out):
    """Eval-mode batch norm as the float model computes it: float64 scale/shift, cast to x's dtype."""
    if kw["training"]:
        raise InputError("model: batch norm runs in training mode; compile() evaluates the model in eval mode")
    x = _value(inputs[0], "batch norm input")
    gamma, beta, mean, var = (_const(inputs[i], "batch norm parameter") for i in range(1, 5))
    scale, shift, _ = norm.normalizing_affine(gamma, beta, mean, var, kw["eps"])
    dtype = np.dtype(b.specs[x].dtype)
    return b.stages(x, [("affine", [scale.astype(dtype), shift.astype(dtype)])])


# Function -> (step for value-op-const, for const-op-value, for value-op-value, the same with the operands
# swapped, numpy ufunc)
_ARITHMETIC = {basic_ops.Add: ("add", "add", "add_input", "add_input", "add"),
               basic_ops.Sub: ("sub", "rsub", "sub_input", "rsub_input", "subtract"),
               basic_ops.Mul: ("mul", "mul", "mul_input", "mul_input", "multiply"),
               basic_ops.Div: ("div", "rdiv", None, None, "divide")}


def _arithmetic(fn):
    """a <op> b: a per-channel step when one side is a per-channel constant, a residual/gate step when
    both are values and one has the output's shape, else numpy's ufunc with broadcasting."""
    const_right, const_left, value_right, value_left, ufunc = _ARITHMETIC[fn]

    def rule(b, inputs, kw, out):
        out_shape = out.shape[1:]
        if out.dtype == np.float32:
            (ka, a), (kb, c) = inputs
            if ka == "value" and kb == "const" and b.specs[a].shape == out_shape:
                vector = _per_channel(np.asarray(c), out_shape)
                if vector is not None:
                    return b.stages(a, [(const_right, [vector])])
            if ka == "const" and kb == "value" and b.specs[c].shape == out_shape:
                vector = _per_channel(np.asarray(a), out_shape)
                if vector is not None:
                    return b.stages(c, [(const_left, [vector])])
            if ka == kb == "value" and value_right is not None:
                sa, sc = b.specs[a], b.specs[c]
                if sa.shape == out_shape and sa.dtype == "float32" and _broadcasts_as_other(sc, sa):
                    return b.stages(a, [(value_right, [])], other=c)
                if sc.shape == out_shape and sc.dtype == "float32" and _broadcasts_as_other(sa, sc):
                    return b.stages(c, [(value_left, [])], other=a)
        return _ufunc(b, ufunc, inputs)

    return rule


def _neg(b, inputs, kw, out):
    x = _value(inputs[0], "negation input")
    if out.dtype == np.float32 and b.specs[x].dtype == "float32":
        return b.stages(x, [("neg", [])])
    return _ufunc(b, "negative", inputs)


def _channel_step(name: str, n_params: int = 0):
    def rule(b, inputs, kw, out):
        x = _value(inputs[0], f"{name} input")
        if b.specs[x].dtype != "float32":
            raise InputError(f"model: {name} on {b.specs[x].dtype} input; packed inference computes it in float32")
        params = []
        for i, entry in enumerate(inputs[1:1 + n_params]):
            vector = _per_channel(np.asarray(_const(entry, f"{name} parameter"), dtype=np.float32), out.shape[1:])
            if vector is None:
                raise InputError(f"model: {name} parameter {i} is not one value per channel")
            params.append(vector)
        return b.stages(x, [(name, params)])

    return rule


def _dprelu(b, inputs, kw, out):
    """DPReLU's forward reads (pos, neg, shift_x, shift_y); the step stores (shift_x, pos, neg, shift_y)."""
    x, pos, neg, shift_x, shift_y = inputs
    return _channel_step("dprelu", 4)(b, [x, shift_x, pos, neg, shift_y], kw, out)


def _quantize(b, inputs, kw, out):
    """A sign quantizer in eval mode is its forward, sign (its STE only matters in training)."""
    if kw["quantizer"].forward is not quantizers.sign_values:
        raise InputError(f"model: quantizer {kw['quantizer'].name!r} has no packed-inference rule (only signs do)")
    return _channel_step("sign")(b, inputs, kw, out)


def _fake_quant(b, inputs, kw, out):
    x = _value(inputs[0], "fake quantization input")
    lo, hi, step = quantizers.quantization_grid(kw["bits"], kw["bound"], kw["signed"])
    return b.stages(x, [("fake_quant", [np.float32(lo), np.float32(hi), np.float32(step)])])


def _pool(op: str):
    def rule(b, inputs, kw, out):
        x = _value(inputs[0], f"{op} input")
        kernel = as_pair(kw["kernel_size"], "kernel_size", 1)
        stride = kernel if kw["stride"] is None else as_pair(kw["stride"], "stride", 1)
        padding = kw["padding"]
        padding = "same" if isinstance(padding, str) else list(as_pair(padding, "padding", 0))
        return b.emit(op, [x], {"kernel_size": list(kernel), "stride": list(stride), "padding": padding})

    return rule


def _reduce(fn: str):
    def rule(b, inputs, kw, out):
        x = _value(inputs[0], f"{fn} input")
        axis = kw.get("axis")
        if axis is None:
            raise InputError(f"model: {fn} over all axes would mix the images of a batch")
        axis = [int(axis)] if np.isscalar(axis) else [int(a) for a in axis]
        return b.emit("reduce", [x], {"fn": fn, "axis": axis, "keepdims": bool(kw.get("keepdims", False))})

    return rule


def _concat(b, inputs, kw, out):
    values = [_value(entry, "concatenated input") for entry in inputs]
    return b.emit("concat", values, {"axis": int(kw["axis"])})


def _reshape(b, inputs, kw, out):
    shape = [{"batch": s.factor} if isinstance(s, BatchDim) else int(s) for s in kw["shape"]]
    return b.emit("reshape", [_value(inputs[0], "reshape input")], {"shape": shape})


def _transpose(b, inputs, kw, out):
    if kw["axes"] is None:
        raise InputError("model: a full transpose would move the batch axis")
    return b.emit("transpose", [_value(inputs[0], "transpose input")], {"axes": [int(a) for a in kw["axes"]]})


def _pad(b, inputs, kw, out):
    return b.emit("pad", [_value(inputs[0], "pad input")],
                  {"pad_width": [[int(x), int(y)] for x, y in kw["pad_width"]], "value": float(kw["value"])})


def _getitem(b, inputs, kw, out):
    """Basic slicing (e.g. RB-Net's cyclic shifts and crops); the batch axis must stay whole."""
    index = kw["index"] if isinstance(kw["index"], tuple) else (kw["index"],)
    if not all(isinstance(s, slice) for s in index) or not index or index[0] != slice(None):
        raise InputError(f"model: indexing with {kw['index']!r}; packed inference supports slices that keep the batch whole")
    entries = [[s.start, s.stop, s.step] for s in index]
    if any(isinstance(v, BatchDim) or not (v is None or isinstance(v, int)) for e in entries for v in e):
        raise InputError(f"model: slice bounds {kw['index']!r} must be plain integers")
    return b.emit("slice", [_value(inputs[0], "sliced input")], {"index": entries})


RULES = {
    binary.BinaryConv2d: _binary_conv,
    binary.BinaryLinear: _binary_linear,
    conv.Conv2d: _float_conv,
    conv.DepthwiseConv2d: _float_conv,
    LinearFunction: _linear,
    norm.BatchNorm: _batch_norm,
    basic_ops.Add: _arithmetic(basic_ops.Add),
    basic_ops.Sub: _arithmetic(basic_ops.Sub),
    basic_ops.Mul: _arithmetic(basic_ops.Mul),
    basic_ops.Div: _arithmetic(basic_ops.Div),
    basic_ops.Neg: _neg,
    basic_ops.Mean: _reduce("mean"),
    basic_ops.Sum: _reduce("sum"),
    basic_ops.Max: _reduce("max"),
    basic_ops.Reshape: _reshape,
    basic_ops.GetItem: _getitem,
    basic_ops.Transpose: _transpose,
    activations.DPRelu: _dprelu,
    activations.Relu: _channel_step("relu"),
    activations.HardSigmoid: _channel_step("hard_sigmoid"),
    quantizers.Quantize: _quantize,
    quantizers.FakeQuant: _fake_quant,
    pooling.AvgPool2d: _pool("avg_pool"),
    pooling.MaxPool2d: _pool("max_pool"),
    shape.Concat: _concat,
    shape.Pad: _pad,
}
