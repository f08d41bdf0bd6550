"""Step rewrites: chains of ``elementwise`` nodes merged into one pass, a residual of channel copies read
as repeated channels, a zero-padded residual read unpadded, a residual of channel-group means read from the
ungrouped value, and concatenated binary-conv branches merged into one conv and one steps node."""

from __future__ import annotations

import math

import numpy as np

from numbnn.inference.graph import Graph, Node
from numbnn.inference.ops import STAGES
from numbnn.inference.ops.steps import MEAN_INPUT_GROUPS

def repeated_inputs_as_other(graph: Graph) -> None:
    producers = graph.producers()
    for node in graph.nodes:
        if node.op != "elementwise" or len(node.inputs) != 2:
            continue
        source = producers.get(node.inputs[1])
        if source is not None and source.op == "concat" and _last_axis(graph, source) and len(set(source.inputs)) == 1:
            node.inputs[1] = source.inputs[0]  # other[..., c % C] already repeats the channels
    graph.prune()


def zero_padded_inputs_as_other(graph: Graph) -> None:
    """An ``add_input`` whose second input is a value padded with +0.0 at the end of its channels (PokeBNN's
    growing shortcut) reads the unpadded value instead (``add_padded_input``): no padded copy."""
    specs = graph.value_specs()
    for node, pad in _residual_adds(graph):
        if pad.op != "pad" or specs[pad.inputs[0]].dtype != "float32":
            continue
        *leading, (before, _) = pad.attrs["pad_width"]
        value = pad.attrs["value"]
        if before or any(tuple(w) != (0, 0) for w in leading) or value != 0 or math.copysign(1.0, value) < 0:
            continue  # -0.0 padding would keep y = -0.0, which adding +0.0 does not
        _add_instead(node, pad.inputs[0], "add_padded_input")
    graph.prune()


def averaged_inputs_as_other(graph: Graph) -> None:
    """An ``add_input`` whose second input is the mean over a short last axis (2-7 values) of a reshape that
    split a value's channels into groups (PokeBNN's channel shrink: ``reshape(..., C, 2)`` then ``mean(-1)``)
    reads that value instead (``add_mean_input``, the same float32 mean computed as the residual is read): no
    pass of its own and no averaged copy."""
    producers = graph.producers()
    specs = graph.value_specs()
    for node, mean in _residual_adds(graph):
        if mean.op != "reduce" or mean.attrs["fn"] != "mean" or mean.attrs["keepdims"]:
            continue
        split = producers.get(mean.inputs[0])
        if split is None or split.op != "reshape" or graph.use_count(split.output) != 1:
            continue
        grouped, source = specs[split.output].shape, specs[split.inputs[0]].shape
        rank = len(grouped) + 1  # with the batch axis
        if [a % rank for a in mean.attrs["axis"]] != [rank - 1] or grouped[-1] not in MEAN_INPUT_GROUPS \
                or tuple(grouped[:-2]) != tuple(source[:-1]) or grouped[-2] * grouped[-1] != source[-1] \
                or specs[split.inputs[0]].dtype != "float32":
            continue
        _add_instead(node, split.inputs[0], "add_mean_input")
    graph.prune()


def _residual_adds(graph: Graph):
    """(node, producer) for each ``elementwise`` node whose one step reading its second input is ``add_input``,
    that input made by ``producer`` and read by nothing else."""
    producers = graph.producers()
    for node in graph.nodes:
        if node.op != "elementwise" or len(node.inputs) != 2:
            continue
        producer = producers.get(node.inputs[1])
        if [s for s in node.attrs["stages"] if STAGES[s][2]] == ["add_input"] and producer is not None \
                and graph.use_count(producer.output) == 1:
            yield node, producer


def _add_instead(node: Node, value: int, stage: str) -> None:
    """``node`` reads ``value`` as its second input, its ``add_input`` step becoming ``stage``."""
    node.inputs[1] = value
    node.attrs = {**node.attrs, "stages": [stage if s == "add_input" else s for s in node.attrs["stages"]]}


def merge_steps(graph: Graph) -> None:
    changed = True
    while changed:
        changed = False
        producers = graph.producers()
        for node in graph.nodes:
            if node.op != "elementwise":
                continue
            for position in range(len(node.inputs)):
                first = producers.get(node.inputs[position])
                if first is not None and first.op == "elementwise" and graph.use_count(first.output) == 1 \
                        and _merge_pair(graph, first, node, position):
                    changed = True
                    break
            if changed:
                break


def _merge_pair(graph: Graph, first: Node, second: Node, position: int) -> bool:
    """Replace ``second`` by first's steps followed by second's, if the result has at most one extra input."""
    if "moves" in second.attrs:
        return False  # second reads first's value rearranged, not as it is
    stages = second.attrs["stages"]
    if position == 1:  # first feeds the residual/gate: swap the operands of second's leading input step
        swapped = {"add_input": "add_input", "mul_input": "mul_input", "sub_input": "rsub_input"}
        if not stages or stages[0] not in swapped or len(second.inputs) != 2:
            return False
        specs = graph.value_specs()
        if specs[second.inputs[1]].shape != specs[second.inputs[0]].shape or specs[second.inputs[0]].dtype != "float32":
            return False
        stages = [swapped[stages[0]]] + stages[1:]
        second_other = second.inputs[0]
    else:
        second_other = second.inputs[1] if len(second.inputs) == 2 else None
    first_other = first.inputs[1] if len(first.inputs) == 2 else None
    if first_other is not None and second_other is not None:
        return False
    second.attrs = {**first.attrs, "stages": first.attrs["stages"] + stages}  # first's moves, if any, stay
    second.consts = {"params": np.concatenate([first.consts["params"], second.consts["params"]])}
    other = first_other if first_other is not None else second_other
    second.inputs = [first.inputs[0]] + ([other] if other is not None else [])
    graph.nodes.remove(first)
    return True


def merge_concatenated_branches(graph: Graph) -> None:
    for concat in [n for n in graph.nodes if n.op == "concat"]:
        merged = _merge_branches(graph, concat)
        if merged is not None:
            position = graph.nodes.index(concat)
            graph.nodes[position:position + 1] = merged
    graph.prune()


def _merge_branches(graph: Graph, concat: Node):
    """[bconv, elementwise] computing concat's value in one conv, or None if the branches do not fit."""
    if len(concat.inputs) < 2 or len(set(concat.inputs)) != len(concat.inputs) or not _last_axis(graph, concat):
        return None
    producers = graph.producers()
    steps = [producers.get(v) for v in concat.inputs]
    if any(s is None or s.op != "elementwise" or graph.use_count(s.output) != 1 for s in steps):
        return None
    convs = [producers.get(s.inputs[0]) for s in steps]
    if any(c is None or c.op != "bconv" or graph.use_count(c.output) != 1 for c in convs):
        return None
    first = convs[0]
    same_conv = all(c.inputs == first.inputs and c.attrs == first.attrs and c.attrs["groups"] == 1
                    and c.consts["weight"].shape[1:] == first.consts["weight"].shape[1:] for c in convs)
    others = {tuple(s.inputs[1:]) for s in steps}
    if not same_conv or len(others) != 1 or len({tuple(s.attrs["stages"]) for s in steps}) != 1:
        return None
    (other,) = others
    if other:
        width = graph.value_specs()[other[0]].shape[-1]
        if any(c.consts["weight"].shape[0] % width for c in convs):
            return None  # channel c of the merged node reads other[c % width]: each branch must start at a multiple
    conv = Node("bconv", list(first.inputs), graph.new_value(), dict(first.attrs),
                {"weight": np.concatenate([c.consts["weight"] for c in convs])})
    params = np.concatenate([s.consts["params"] for s in steps], axis=1)
    step = Node("elementwise", [conv.output, *other], concat.output, {"stages": list(steps[0].attrs["stages"])},
                {"params": params})
    for node in steps + convs:
        graph.nodes.remove(node)
    return [conv, step]


def _last_axis(graph: Graph, concat: Node) -> bool:
    rank = len(graph.value_specs()[concat.output].shape) + 1
    return concat.attrs["axis"] % rank == rank - 1
