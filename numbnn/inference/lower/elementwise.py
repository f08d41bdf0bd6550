"""Lowering rules of the element-wise Functions: arithmetic (per-channel steps, residuals and gates, else
numpy ufuncs), activations, signs and fake quantization, each a one-step ``elementwise`` node."""

from __future__ import annotations

import numpy as np

from numbnn.autograd import arithmetic
from numbnn.errors import InputError
from numbnn.functional import activations, quantizers
from numbnn.inference.lower.builder import Builder, const_input, per_channel, value_input
from numbnn.inference.ops import Spec


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


# Function -> (step for value-op-const, for const-op-value, for value-op-value, the same with the operands
# swapped, numpy ufunc)
_ARITHMETIC = {arithmetic.Add: ("add", "add", "add_input", "add_input", "add"),
               arithmetic.Sub: ("sub", "rsub", "sub_input", "rsub_input", "subtract"),
               arithmetic.Mul: ("mul", "mul", "mul_input", "mul_input", "multiply"),
               arithmetic.Div: ("div", "rdiv", None, None, "divide")}


def _arithmetic(fn):
    """a <op> b: a per-channel step when one side is a per-channel constant, a residual/gate step when
    both are values and one has the output's shape, else numpy's ufunc with broadcasting."""
    const_right, const_left, value_right, value_left, ufunc = _ARITHMETIC[fn]

    def rule(b, inputs, kw, out):
        out_shape = out.shape[1:]
        if out.dtype == np.float32:
            (ka, a), (kb, c) = inputs
            if ka == "value" and kb == "const" and b.specs[a].shape == out_shape:
                vector = per_channel(np.asarray(c), out_shape)
                if vector is not None:
                    return b.stages(a, [(const_right, [vector])])
            if ka == "const" and kb == "value" and b.specs[c].shape == out_shape:
                vector = per_channel(np.asarray(a), out_shape)
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
    x = value_input(inputs[0], "negation input")
    if out.dtype == np.float32 and b.specs[x].dtype == "float32":
        return b.stages(x, [("neg", [])])
    return _ufunc(b, "negative", inputs)


def _channel_step(name: str, n_params: int = 0):
    def rule(b, inputs, kw, out):
        x = value_input(inputs[0], f"{name} input")
        if b.specs[x].dtype != "float32":
            raise InputError(f"model: {name} on {b.specs[x].dtype} input; packed inference computes it in float32")
        params = []
        for i, entry in enumerate(inputs[1:1 + n_params]):
            vector = per_channel(np.asarray(const_input(entry, f"{name} parameter"), dtype=np.float32), out.shape[1:])
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
    x = value_input(inputs[0], "fake quantization input")
    lo, hi, step = quantizers.quantization_grid(kw["bits"], kw["bound"], kw["signed"])
    return b.stages(x, [("fake_quant", [np.float32(lo), np.float32(hi), np.float32(step)])])


RULES = {
    arithmetic.Add: _arithmetic(arithmetic.Add),
    arithmetic.Sub: _arithmetic(arithmetic.Sub),
    arithmetic.Mul: _arithmetic(arithmetic.Mul),
    arithmetic.Div: _arithmetic(arithmetic.Div),
    arithmetic.Neg: _neg,
    activations.DPRelu: _dprelu,
    activations.Relu: _channel_step("relu"),
    activations.HardSigmoid: _channel_step("hard_sigmoid"),
    quantizers.Quantize: _quantize,
    quantizers.FakeQuant: _fake_quant,
}
