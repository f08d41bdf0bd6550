"""``compile(model) -> PackedModel``: trace, lower, fuse, and check against the float model.

1. Record the model's eval-mode forward pass on two random batches (:mod:`numbnn.inference.trace`).
2. Turn each recorded op into inference ops, weights packed once (:mod:`numbnn.inference.lower`).
3. Fuse (:mod:`numbnn.inference.fuse`): per-channel steps into single passes, RSign thresholds into
   the packing, batch norm + sign into integer thresholds where no residual intervenes.
4. A ReActXGB model with fitted trees gets its tree head as a ``trees`` op on the pooled features.
5. Run the compiled graph on the traced batches and compare with the model's own outputs; a mismatch
   beyond float rounding means the model does something the compiler does not see, and is an error.

This module uses the model and the autograd (compile time); the :class:`PackedModel` it returns does not.
"""

from __future__ import annotations

import json

import numpy as np

from numbnn.autograd import Tensor, no_grad
from numbnn.checks import check_int
from numbnn.datasets.fashion import CLASSES, MEAN, STD
from numbnn.errors import InputError
from numbnn.inference.fuse import optimize
from numbnn.inference.graph import Node
from numbnn.inference.lower import lower
from numbnn.inference.model import PackedModel
from numbnn.inference.ops import Spec
from numbnn.inference.trace import trace_forward
from numbnn.inference.trees import from_xgboost_json
from numbnn.nn import Module

# Verification tolerance on the outputs: the compiled graph repeats the float model's float32 steps, so
# the outputs agree to the last bit unless BLAS rounds a float layer differently; this leaves room for that.
VERIFY_RTOL = 1e-4


def compile(model, input_shape=None) -> PackedModel:  # noqa: A001  (the library's public name)
    """Compile an eval-mode ``numbnn.nn.Module`` into a :class:`PackedModel` (see the module docstring).

    ``input_shape`` (H, W, C) defaults to 28 x 28 x the model's ``in_channels`` (1). The model's
    train/eval modes are restored afterwards.
    """
    if not isinstance(model, Module):
        raise InputError(f"model must be a numbnn Module, got {type(model).__name__}")
    input_shape = _input_shape(model, input_shape)
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        trees = _tree_head(model)
        forward = model.features if trees is not None else model
        trace = trace_forward(forward, input_shape)
        graph = lower(trace, Spec("float32", input_shape))
        if trees is not None:
            output = graph.new_value()
            graph.nodes.append(Node("trees", [graph.output], output, trees["attrs"], trees["consts"]))
            graph.output = output
        optimize(graph)
        meta = _meta(model, input_shape)
        packed = PackedModel(graph, meta)
        meta["report"] = _verify(model, packed, trace)
    finally:
        for module, training in modes:
            module.training = training
    return packed


def _input_shape(model, input_shape) -> tuple:
    if input_shape is None:
        channels = getattr(model, "config", {}).get("args", {}).get("in_channels", 1)
        return (28, 28, int(channels))
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise InputError(f"input_shape must be three positive integers (H, W, C), got {input_shape!r}")
    return tuple(check_int(v, f"input_shape {axis}") for axis, v in zip("HWC", shape))


def _tree_head(model) -> dict | None:
    """The ``trees`` op description of a model whose fitted tree head replaces its classifier (ReActXGB)."""
    if not getattr(model, "has_trees", False):
        return None
    raw = bytes(model.booster.save_raw(raw_format="json"))
    return from_xgboost_json(raw, int(model.classifier.in_features))


def _meta(model, input_shape) -> dict:
    config = getattr(model, "config", None) or {"name": type(model).__name__, "args": {}}
    return {"config": json.loads(json.dumps(config)), "input_shape": list(input_shape), "mean": float(MEAN),
            "std": float(STD), "classes": list(CLASSES)}


def _verify(model, packed: PackedModel, trace) -> dict:
    """Compare the compiled model with the float model on the traced batches; raise on a real difference."""
    worst = 0.0
    for x, y in zip(trace.inputs, trace.outputs):
        if getattr(model, "has_trees", False):
            with no_grad():
                y = model(Tensor(x)).data
        got = packed.program.run(x)
        if got.shape != y.shape:
            raise InputError(f"model: compiled output shape {got.shape} differs from the model's {y.shape}")
        difference = float(np.max(np.abs(got.astype(np.float64) - y)))
        scale = float(np.max(np.abs(y))) + 1.0
        if not difference <= VERIFY_RTOL * scale:
            raise InputError(f"model: the compiled graph's output differs from the float model's by {difference:.3g} "
                             "(an op outside numbnn's autograd, or a compiler bug)")
        worst = max(worst, difference)
    return {"max_abs_difference_on_trace": worst, "ops": packed.op_counts()}
