"""Pack rewrites: one ``pack`` per distinct input, thresholds folded into packs (RSign's ``x + b``,
a sign), shifts folded into gathering packs (RB-Net's ``x + t`` before a rearrangement), and packs of a
binary layer's float steps turned into integer thresholds on its accumulator (``pack_acc``)."""

from __future__ import annotations

import numpy as np

from numbnn.inference.graph import Graph, Node
from numbnn.inference.ops import Elementwise

_PEELABLE = {"add": lambda p: -p, "sub": lambda p: p}  # the threshold; the same add as a shift is its negation
_TABLE_CHUNK = 1 << 22  # accumulator values x channels evaluated at once


def share_packs(graph: Graph) -> None:
    seen: dict[tuple, int] = {}
    for node in list(graph.nodes):
        if node.op != "pack":
            continue
        threshold = node.consts.get("threshold")
        key = (node.inputs[0], node.attrs["groups"], None if threshold is None else threshold.tobytes())
        if key in seen:
            graph.replace_uses(node.output, seen[key])
            graph.nodes.remove(node)
        else:
            seen[key] = node.output


def fold_into_packs(graph: Graph) -> None:
    producers = graph.producers()
    for node in graph.nodes:
        if node.op != "pack":
            continue
        source = producers.get(node.inputs[0])
        if source is None or source.op != "elementwise" or graph.use_count(source.output) != 1:
            continue
        stages = list(source.attrs["stages"])
        params = source.consts["params"]
        threshold = node.consts.get("threshold")
        while stages and stages[-1] == "sign" and threshold is None:  # sign(y) < 0 exactly when y < 0
            stages.pop()
        if stages and stages[-1] in _PEELABLE and threshold is None:
            threshold = _PEELABLE[stages.pop()](params[-1]).astype(np.float32)
            params = params[:-1]
        if len(stages) == len(source.attrs["stages"]):
            continue
        if threshold is not None:
            node.consts["threshold"] = threshold
        if not stages and len(source.inputs) == 1 and "moves" not in source.attrs \
                and graph.value_specs()[source.inputs[0]].dtype == "float32":
            node.inputs = [source.inputs[0]]  # nothing left to compute: pack the source's input
        else:
            source.attrs = {**source.attrs, "stages": stages}
            source.consts = {"params": params}
    graph.prune()


def fold_shifts_into_gather_packs(graph: Graph) -> None:
    producers = graph.producers()
    specs = graph.value_specs()
    for node in graph.nodes:
        if node.op != "gather_pack" or "shift" in node.consts:
            continue
        source = producers.get(node.inputs[0])
        if source is None or source.op != "elementwise" or graph.use_count(source.output) != 1 \
                or len(source.inputs) != 1 or "moves" in source.attrs:
            continue
        stages = list(source.attrs["stages"])
        only_the_add = len(stages) == 1
        if not stages or stages[-1] not in _PEELABLE or (only_the_add and specs[source.inputs[0]].dtype != "float32"):
            continue
        params = source.consts["params"]
        node.consts["shift"] = (-_PEELABLE[stages.pop()](params[-1])).astype(np.float32)  # x - b is x + (-b) exactly
        if stages:
            source.attrs = {**source.attrs, "stages": stages}
            source.consts = {"params": params[:-1]}
        else:
            node.inputs = [source.inputs[0]]
    graph.prune()


def fold_accumulator_packs(graph: Graph) -> None:
    producers = graph.producers()
    for index, node in enumerate(graph.nodes):
        if node.op != "pack":
            continue
        steps = producers.get(node.inputs[0])
        if steps is None or steps.op != "elementwise" or len(steps.inputs) != 1 or graph.use_count(steps.output) != 1 \
                or "moves" in steps.attrs:
            continue
        layer = producers.get(steps.inputs[0])
        bound = _accumulator_bound(layer)
        if bound is None:
            continue
        folded = accumulator_thresholds(steps, node.consts.get("threshold"), bound)
        if folded is None:
            continue
        thresholds, flip = folded
        graph.nodes[index] = Node("pack_acc", [layer.output], node.output, {"groups": node.attrs["groups"]},
                                  {"threshold": thresholds, "flip": flip})
    graph.prune()


def _accumulator_bound(layer: Node | None) -> int | None:
    """Largest |acc| the layer can produce: taps x channels per group (or in_features)."""
    if layer is None:
        return None
    if layer.op == "bconv":
        _, kh, kw, _ = layer.consts["weight"].shape
        return kh * kw * layer.attrs["in_channels"] // layer.attrs["groups"]
    if layer.op == "bdense":
        return layer.attrs["in_features"]
    return None


def accumulator_thresholds(steps: Node, threshold, bound: int):
    """int32 thresholds and flips with bit = (acc < t) XOR flip == (steps(acc) < threshold) for every
    integer acc in [-bound, bound]; None if some channel's bits switch more than once."""
    op = Elementwise(steps.attrs, steps.consts)
    channels = steps.consts["params"].shape[1]
    values = np.arange(-bound, bound + 1, dtype=np.int32)
    limit = np.zeros(channels, np.float32) if threshold is None else threshold
    thresholds = np.empty(channels, np.int32)
    flip = np.empty(channels, np.bool_)
    step = max(1, _TABLE_CHUNK // values.size)
    for start in range(0, channels, step):
        stop = min(channels, start + step)
        sub = Elementwise(steps.attrs, {"params": np.ascontiguousarray(op.params[:, start:stop])})
        table = np.ascontiguousarray(np.broadcast_to(values[:, None], (values.size, stop - start)))
        bits = sub(table) < limit[start:stop]
        changes = np.diff(bits.astype(np.int8), axis=0)
        falling, rising = (changes <= 0).all(axis=0), (changes >= 0).all(axis=0)
        if not (falling | rising).all():
            return None
        ones, zeros = bits.sum(axis=0), (~bits).sum(axis=0)
        flip[start:stop] = ~falling
        thresholds[start:stop] = -bound + np.where(falling, ones, zeros)
    return thresholds, flip
