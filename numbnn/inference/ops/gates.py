"""Squeeze-and-excitation gates: the chain from a map to its per-channel gate as one node."""

from __future__ import annotations

import numpy as np

from numbnn.inference.ops.base import Op, Spec, expect, get_attr, register_op
from numbnn.inference.ops.layers import Linear
from numbnn.inference.ops.steps import Elementwise
from numbnn.kernels.squeeze_excite import squeeze_excite_gate


@register_op
class SqueezeExcite(Op):
    """Per image, the gate steps_3(linear_2(steps_2(linear_1(steps_1(mean of x over its pixels))))) as
    [1, 1, C_out] (the row per image a ``mul_input`` step reads): the ``reduce`` (spatial mean),
    ``elementwise``, ``linear``, ``elementwise``, ``linear``, ``elementwise`` and ``reshape`` nodes of a
    squeeze-and-excitation block in one (:func:`numbnn.inference.fuse.gates.fuse_squeeze_excite_gates`),
    computed by :func:`numbnn.kernels.squeeze_excite.squeeze_excite_gate` with those nodes' own loops, so
    bit for bit their result.

    attrs ``stages``: three lists of step names, each as an ``elementwise`` node takes them (none reading a
    second input); consts ``params_1..3`` (their parameters), ``weight_1`` [D, C] and ``weight_2`` [C_out, D],
    optional ``bias_1``, ``bias_2``, as ``linear`` nodes take them."""

    name = "squeeze_excite"
    const_names = ("params_1", "weight_1", "bias_1", "params_2", "weight_2", "bias_2", "params_3")

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        stages = get_attr(attrs, "stages", self.name)
        expect(isinstance(stages, list) and len(stages) == 3, "squeeze_excite: stages must be three lists of steps")
        for name in ("params_1", "weight_1", "params_2", "weight_2", "params_3"):
            expect(name in consts, f"squeeze_excite: missing constant {name!r}")
        self.steps = []
        for k, names in enumerate(stages, 1):
            step = Elementwise({"stages": names}, {"params": consts[f"params_{k}"]})
            expect(not step.uses_other, "squeeze_excite: a step reads a second input")
            self.steps.append(step)
        self.layers = [Linear({}, {"weight": consts[f"weight_{k}"], **({"bias": consts[f"bias_{k}"]}
                                                                     if f"bias_{k}" in consts else {})})
                       for k in (1, 2)]
        (hidden, self.channels), (self.gates, depth) = (layer.weight.shape for layer in self.layers)
        expect(depth == hidden, f"squeeze_excite: weight_2 must take {hidden} features, got {depth}")
        # the kernel's arguments after x, fixed for the node: each program, then each layer's weights and bias
        (first, second, third), (one, two) = self.steps, self.layers
        self.arguments = (*_program(first, self.channels), one.weight_t, *_bias(one),
                          *_program(second, hidden), two.weight_t, *_bias(two), *_program(third, self.gates))

    def output_spec(self, specs):
        self._expect_inputs(specs, ["float32"])
        expect(len(specs[0].shape) == 3 and specs[0].shape[-1] == self.channels,
               f"squeeze_excite: input must be [H, W, {self.channels}], got {specs[0].shape}")
        for step, width in zip(self.steps, (self.channels, self.layers[0].weight.shape[0], self.gates)):
            step.output_spec([Spec("float32", (width,))])
        return Spec("float32", (1, 1, self.gates))

    def __call__(self, x):
        out = np.empty((x.shape[0], self.gates), np.float32)
        squeeze_excite_gate(np.ascontiguousarray(x), *self.arguments, out)
        return out.reshape(x.shape[0], 1, 1, self.gates)

def _program(step: Elementwise, channels: int):
    """(codes, first rows, params) of an ``elementwise`` op's steps, as the kernels take them."""
    return step.codes, step.first_rows, step.channel_params(channels)


def _bias(layer: Linear):
    """(bias, whether there is one): an empty array stands in for a missing bias."""
    return (layer.bias, True) if layer.bias is not None else (np.zeros(0, np.float32), False)

