"""Lowering rules of the layers with weights: binary convolutions and linear layers (packed weights and
their alpha step), float convolutions and linear layers, eval-mode batch norm, and the fused block op
batch norm + residual + DPReLU/RPReLU (as the three steps it fuses)."""

from __future__ import annotations

import numpy as np

from numbnn.autograd import arithmetic
from numbnn.errors import InputError
from numbnn.functional import activations, binary, conv, norm, shape
from numbnn.functional.linear import Linear as LinearFunction
from numbnn.inference.lower import elementwise, shapes
from numbnn.inference.lower.builder import const_input, per_channel, value_input
from numbnn.kernels import pack_bits, pack_conv_weight
from numbnn.kernels._checks import as_pair


def _geometry(kwargs) -> dict:
    return {"stride": list(as_pair(kwargs["stride"], "stride", 1)), "padding": list(as_pair(kwargs["padding"], "padding", 0)),
            "dilation": list(as_pair(kwargs["dilation"], "dilation", 1)), "groups": int(kwargs["groups"])}


def _binary_conv(b, inputs, kw, out):
    """``pack`` (of x + shift when the conv takes its RSign's threshold: the ``add`` step first, as the
    unfused chain's; of the shuffled x when it takes a channel shuffle: the shuffle's own steps first),
    then ``bconv`` with the alpha step."""
    x = value_input(inputs[0], "a binary convolution's input")
    w, scale = const_input(inputs[1], "binary conv weight"), const_input(inputs[2], "binary conv scale")
    if len(inputs) > 3 and inputs[3] is not None:
        traced_input = np.empty((1, *b.specs[x].shape), np.dtype(b.specs[x].dtype))
        x = elementwise.RULES[arithmetic.Add](b, [("value", x), inputs[3]], {}, traced_input)
    if kw.get("shuffle_groups", 1) > 1:
        x = shapes.RULES[shape.ChannelShuffle](b, [("value", x)], {"groups": kw["shuffle_groups"]}, None)
    geometry = _geometry(kw)
    packed = b.emit("pack", [x], {"groups": geometry["groups"]})
    acc = b.emit("bconv", [packed], {**geometry, "in_channels": b.specs[x].shape[-1], "pad_value": int(kw["pad_value"])},
                 {"weight": pack_conv_weight(w)})
    return b.stages(acc, [] if scale is None else [("mul", [_scale_vector(scale, out)])])


def _binary_linear(b, inputs, kw, out):
    x = value_input(inputs[0], "a binary linear layer's input")
    w, scale = const_input(inputs[1], "binary linear weight"), const_input(inputs[2], "binary linear scale")
    packed = b.emit("pack", [x], {"groups": 1})
    acc = b.emit("bdense", [packed], {"in_features": int(w.shape[1])}, {"weight": pack_bits(w)})
    return b.stages(acc, [] if scale is None else [("mul", [_scale_vector(scale, out)])])


def _scale_vector(scale, out):
    vector = per_channel(scale, out.shape[1:])
    if vector is None:
        raise InputError(f"model: binary layer scale of shape {scale.shape} {scale.dtype} is not one float32 per channel")
    return vector


def _float_conv(b, inputs, kw, out):
    x = value_input(inputs[0], "a convolution's input")
    weight, bias = const_input(inputs[1], "conv weight"), const_input(inputs[2], "conv bias")
    return b.emit("conv2d", [x], _geometry(kw), {"weight": weight, "bias": bias})


def _linear(b, inputs, kw, out):
    x = value_input(inputs[0], "a linear layer's input")
    return b.emit("linear", [x], {}, {"weight": const_input(inputs[1], "linear weight"), "bias": const_input(inputs[2], "linear bias")})


def _batch_norm(b, inputs, kw, out):
    """Eval-mode batch norm as the float model computes it: float64 scale/shift, cast to x's dtype."""
    if kw["training"]:
        raise InputError("model: batch norm runs in training mode; compile() evaluates the model in eval mode")
    x = value_input(inputs[0], "batch norm input")
    gamma, beta, mean, var = (const_input(inputs[i], "batch norm parameter") for i in range(1, 5))
    scale, shift, _ = norm.normalizing_affine(gamma, beta, mean, var, kw["eps"])
    dtype = np.dtype(b.specs[x].dtype)
    return b.stages(x, [("affine", [scale.astype(dtype), shift.astype(dtype)])])


def _batch_norm_add_dprelu(b, inputs, kw, out):
    """The fused block op as the chain it fuses, emitted by the rules of those ops: per part the ``affine``
    step of eval-mode batch norm and the residual's ``add_input``, their concatenation if there are several
    parts, then the ``dprelu`` step; so the compiled graph (after :mod:`numbnn.inference.fuse` merges the
    steps and the branches) is the one the unfused chain gives. With ``add_after``: the ``affine`` step,
    the ``dprelu`` step, then the residual's ``add_input``. With ``residual_copies``: the residual's
    concatenation first."""
    *parts, residual, pos, neg, shift_x, shift_y = inputs
    if kw.get("residual_copies", 1) > 1:  # the residual's channels repeated: the concatenation it stands for
        residual = ("value", shapes.RULES[shape.Concat](b, [residual] * kw["residual_copies"], {"axis": -1}, out))
    if kw.get("add_after"):
        normed = _batch_norm(b, parts, kw, out)
        activated = elementwise.RULES[activations.DPRelu](b, [("value", normed), pos, neg, shift_x, shift_y], {}, out)
        return elementwise.RULES[arithmetic.Add](b, [("value", activated), residual], {}, out)
    count = len(parts) // 5
    width = out.shape[-1] // count
    summed = []
    for k in range(count):
        x, gamma, beta, mean, var = parts[5 * k: 5 * k + 5]
        part_out = out[..., k * width: (k + 1) * width]
        normed = _batch_norm(b, [x, gamma, beta, mean, var], kw, part_out)
        summed.append(elementwise.RULES[arithmetic.Add](b, [("value", normed), residual], {}, part_out))
    joined = summed[0] if count == 1 else shapes.RULES[shape.Concat](b, [("value", v) for v in summed], {"axis": -1}, out)
    return elementwise.RULES[activations.DPRelu](b, [("value", joined), pos, neg, shift_x, shift_y], {}, out)


RULES = {
    binary.BinaryConv2d: _binary_conv,
    binary.BinaryLinear: _binary_linear,
    conv.Conv2d: _float_conv,
    conv.DepthwiseConv2d: _float_conv,
    LinearFunction: _linear,
    norm.BatchNorm: _batch_norm,
    norm.BatchNormAddDPRelu: _batch_norm_add_dprelu,
}
