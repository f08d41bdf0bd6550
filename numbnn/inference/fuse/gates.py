"""Gate rewrites: a squeeze-and-excitation block's gate chain becomes one ``squeeze_excite`` node."""

from __future__ import annotations

import numpy as np

from numbnn.inference.graph import Graph, Node
from numbnn.inference.ops import STAGES


def fuse_squeeze_excite_gates(graph: Graph) -> None:
    """``reduce`` (spatial mean) -> [``elementwise``] -> ``linear`` -> [``elementwise``] -> ``linear`` ->
    [``elementwise``] -> ``reshape`` to [1, 1, C], each value read only by the next node, becomes one
    :class:`~numbnn.inference.ops.SqueezeExcite` node with the same output (the bracketed steps optional,
    none reading a second input). Seven nodes of a few values each cost PokeBNN about 70 us per block at
    batch 1, more in dispatch than in arithmetic; the fused node computes the same float32 operations."""
    producers = graph.producers()
    specs = graph.value_specs()
    for index, node in enumerate(graph.nodes):
        if node.op != "reshape":
            continue
        gate = specs[node.inputs[0]].shape
        if len(gate) != 1 or tuple(specs[node.output].shape) != (1, 1, gate[0]):
            continue
        chain = _gate_chain(graph, producers, node)
        if chain is None:
            continue
        mean, parts = chain
        if len(specs[mean.inputs[0]].shape) != 3:
            continue
        attrs = {"stages": [list(step.attrs["stages"]) if step is not None else [] for step in parts[0::2]]}
        consts = {f"params_{k}": step.consts["params"] if step is not None else np.zeros((0, 1), np.float32)
                  for k, step in enumerate(parts[0::2], 1)}
        for k, layer in enumerate(parts[1::2], 1):
            consts[f"weight_{k}"] = layer.consts["weight"]
            if "bias" in layer.consts:
                consts[f"bias_{k}"] = layer.consts["bias"]
        graph.nodes[index] = Node("squeeze_excite", [mean.inputs[0]], node.output, attrs, consts)
    graph.prune()


def _gate_chain(graph: Graph, producers: dict, reshape: Node):
    """(the mean node, [steps_1, linear_1, steps_2, linear_2, steps_3]) ending at ``reshape``, a step None
    where the chain has none; None if the nodes before ``reshape`` are not such a chain."""
    wanted = ["elementwise?", "linear", "elementwise?", "linear", "elementwise?"]
    parts = []
    value = reshape.inputs[0]
    for kind in reversed(wanted):
        node = producers.get(value)
        if node is None or graph.use_count(value) != 1:
            return None
        if kind == "elementwise?":
            if node.op != "elementwise":
                parts.append(None)
                continue
            if len(node.inputs) != 1 or "moves" in node.attrs or any(STAGES[s][2] for s in node.attrs["stages"]):
                return None
        elif node.op != kind:
            return None
        parts.append(node)
        value = node.inputs[0]
    mean = producers.get(value)
    if mean is None or graph.use_count(value) != 1 or mean.op != "reduce" or mean.attrs["fn"] != "mean" \
            or sorted(a % 4 for a in mean.attrs["axis"]) != [1, 2] or mean.attrs["keepdims"]:
        return None
    return mean, parts[::-1]
