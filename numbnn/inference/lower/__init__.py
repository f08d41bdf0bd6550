"""Turn a recorded forward pass (:mod:`numbnn.inference.trace`) into a graph of inference ops.

One rule per autograd Function; each rule emits the ops that compute exactly what the Function's
forward computes in eval mode, with the constants it needs prepared once:

- ``BinaryConv2d`` / ``BinaryLinear`` -> ``pack`` (signs of the input), ``bconv`` / ``bdense`` with the
  weights packed once, and an ``elementwise`` "mul alpha" step (the float model multiplies the exact
  integer result by alpha in float32, and so does this);
- batch norm in eval mode -> an ``affine`` step with the float model's own float32 scale and shift;
  the fused block op (batch norm, residual add, DPReLU/RPReLU: ``BatchNormAddDPRelu``) -> the three
  steps of the chain it fuses;
- per-channel element-wise Functions (bias, RSign's subtraction, DPReLU/RPReLU/FPReLU, ReLU, hard
  sigmoid, fake quantization, signs, residual adds and gates) -> one-step ``elementwise`` nodes, which
  :mod:`numbnn.inference.fuse` then merges and folds;
- float convolutions, linear layers, pooling, reductions and shape ops -> the ops of the same names.

A Function without a rule stops compilation with an error that names it. The rules live by family:
:mod:`~numbnn.inference.lower.layers` (layers with weights), :mod:`~numbnn.inference.lower.elementwise`
and :mod:`~numbnn.inference.lower.shapes` (pooling, reductions, shape ops), on the
:class:`~numbnn.inference.lower.builder.Builder` of :mod:`~numbnn.inference.lower.builder`.
"""

from __future__ import annotations

from numbnn.errors import InputError
from numbnn.inference.graph import Graph
from numbnn.inference.lower import elementwise, layers, shapes
from numbnn.inference.lower.builder import Builder
from numbnn.inference.ops import Spec
from numbnn.inference.trace import Trace

RULES = {**layers.RULES, **elementwise.RULES, **shapes.RULES}  # autograd Function -> its lowering rule


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
