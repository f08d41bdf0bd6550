"""Rewrites that make a lowered graph fast without changing a single output bit (in the order run).

1. :func:`share_packs`: one ``pack`` per distinct (value, groups, threshold): two binary convs reading
   the same activation (ReActNet's duplicated 1x1 branches) pack it once.
2. :func:`repeated_inputs_as_other`: a residual made of channel copies (``concat([x] * k)``) is read
   as x with repeated channels.
3. :func:`merge_steps`: chains of ``elementwise`` nodes become one node, so alpha, batch norm, the
   residual add and RPReLU after a binary conv are one pass (same float32 steps in the same order). A
   residual read as the first input is swapped to the second when legal.
4. :func:`merge_concatenated_branches`: binary convs on the same packed input whose step outputs are
   concatenated (ReActNet's duplicated 1x1 branches) become one conv with the output channels of all,
   one steps node, and no concatenation.
5. :func:`fold_into_packs`: a ``pack`` reading ``x + b`` / ``x - b`` / ``sign(x)`` packs x against the
   threshold -b / b / 0 instead (exact in floating point, see :class:`numbnn.inference.ops.Pack`):
   RSign's threshold is applied while packing.
6. :func:`fold_movements_into_packs` / :func:`fold_movements_into_steps`: packing, or per-channel
   steps on, a rearranged tensor (ShuffleNet's channel shuffle, RB-Net's space-to-depth, shifts and
   padding) read straight from the source through an index map instead.
7. :func:`fold_accumulator_packs`: a ``pack`` of per-channel float steps of a binary layer's int32
   result (no residual in between) becomes integer thresholds on the accumulator (``pack_acc``), LCE's
   bitpacked output. The steps are evaluated in float32 on *every* accumulator value the layer can
   produce; a channel whose sign pattern is one switch gives threshold + flip (a negative scale flips
   the comparison), so the bits equal the float model's. A channel with more switches keeps the float
   path.
8. :func:`fuse_convolutions_and_steps`: a binary conv and the steps reading it run as one kernel, block
   by block, so the int32 results never go to memory.
9. :func:`fuse_packs_into_conv_steps`: a ``pack`` of a fused conv's float output is done by that conv,
   block by block while the rows are in the cache; the node then writes two values, the float output
   (ReActNet's next residual) and its packed signs (the next RSign), and nothing reads the float output
   a second time to pack it. Same comparison per element, same bits.
"""

from __future__ import annotations

import numpy as np

from numbnn.inference.graph import Graph, Node
from numbnn.inference.ops import MOVEMENTS, Elementwise

_PEELABLE = {"add": lambda p: -p, "sub": lambda p: p}
_TABLE_CHUNK = 1 << 22  # accumulator values x channels evaluated at once


def optimize(graph: Graph) -> Graph:
    share_packs(graph)
    repeated_inputs_as_other(graph)
    merge_steps(graph)
    merge_concatenated_branches(graph)
    merge_steps(graph)
    fold_into_packs(graph)
    fold_movements_into_packs(graph)
    fold_movements_into_steps(graph)
    share_packs(graph)
    fold_accumulator_packs(graph)
    fuse_convolutions_and_steps(graph)
    fuse_packs_into_conv_steps(graph)
    graph.prune()
    return graph


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
        specs = _specs(graph)
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


def repeated_inputs_as_other(graph: Graph) -> None:
    producers = graph.producers()
    for node in graph.nodes:
        if node.op != "elementwise" or len(node.inputs) != 2:
            continue
        source = producers.get(node.inputs[1])
        if source is not None and source.op == "concat" and _last_axis(graph, source) and len(set(source.inputs)) == 1:
            node.inputs[1] = source.inputs[0]  # other[..., c % C] already repeats the channels
    graph.prune()


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
        width = _specs(graph)[other[0]].shape[-1]
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
    rank = len(_specs(graph)[concat.output].shape) + 1
    return concat.attrs["axis"] % rank == rank - 1


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
                and _specs(graph)[source.inputs[0]].dtype == "float32":
            node.inputs = [source.inputs[0]]  # nothing left to compute: pack the source's input
        else:
            source.attrs = {**source.attrs, "stages": stages}
            source.consts = {"params": params}
    graph.prune()


def fold_movements_into_packs(graph: Graph) -> None:
    """A ``pack`` of values only moved around (reshapes, transposes, slices, padding, concatenations of
    one source) becomes a ``gather_pack`` of the source, the moves kept as its description. Moving a
    value never changes its sign, so the bits are the same."""
    producers = graph.producers()
    specs = _specs(graph)
    for index, node in enumerate(graph.nodes):
        if node.op != "pack" or producers.get(node.inputs[0]) is None or producers[node.inputs[0]].op not in MOVEMENTS:
            continue
        described = _described_moves(producers, specs, node.inputs[0])
        if described is None:
            continue
        source, moves = described
        graph.nodes[index] = Node("gather_pack", [source], node.output,
                                  {"groups": node.attrs["groups"], "source_shape": list(specs[source].shape),
                                   "moves": moves}, dict(node.consts))
    graph.prune()


def fold_movements_into_steps(graph: Graph) -> None:
    """An ``elementwise`` node whose first input is only moved around reads it through the moves
    (RB-Net's depth-to-space and shift back after each binary conv, then batch norm and the residual)."""
    producers = graph.producers()
    specs = _specs(graph)
    for node in graph.nodes:
        source_node = producers.get(node.inputs[0])
        if node.op != "elementwise" or "moves" in node.attrs or source_node is None or source_node.op not in MOVEMENTS:
            continue
        described = _described_moves(producers, specs, node.inputs[0])
        if described is not None:
            source, moves = described
            node.attrs = {**node.attrs, "source_shape": list(specs[source].shape), "moves": moves}
            node.inputs[0] = source
    graph.prune()


def _described_moves(producers, specs, value):
    """(source value, moves as GatherPack/Elementwise describe them) computing ``value``, or None if
    ``value`` is not a real rearrangement of one float32 value."""
    moves, sources = _movement_subgraph(producers, value)
    if len(sources) != 1 or specs[next(iter(sources))].dtype != "float32" or all(m.op == "reshape" for m in moves):
        return None
    (source,) = sources
    local = {source: 0}
    described = []
    for move in moves:
        described.append({"op": move.op, "inputs": [local[v] for v in move.inputs], "attrs": move.attrs})
        local[move.output] = len(described)
    return (source, described) if local[value] == len(described) else None


def _movement_subgraph(producers, value):
    """The movement nodes computing ``value`` (in graph order) and the values they start from."""
    moves, sources, stack, seen = [], set(), [value], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        node = producers.get(current)
        if node is None or node.op not in MOVEMENTS:
            sources.add(current)
            continue
        moves.append(node)
        stack.extend(node.inputs)
    order = {id(node): i for i, node in enumerate(producers.values())}
    return sorted(moves, key=lambda node: order[id(node)]), sources


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


def fuse_convolutions_and_steps(graph: Graph) -> None:
    """A ``bconv`` read only by an ``elementwise`` node becomes one ``bconv_steps`` node."""
    producers = graph.producers()
    for index, node in enumerate(graph.nodes):
        if node.op != "elementwise":
            continue
        conv = producers.get(node.inputs[0])
        if conv is None or conv.op != "bconv" or graph.use_count(conv.output) != 1 or "moves" in node.attrs:
            continue
        graph.nodes[index] = Node("bconv_steps", [conv.inputs[0], *node.inputs[1:]], node.output,
                                  {**conv.attrs, "stages": node.attrs["stages"]},
                                  {"weight": conv.consts["weight"], "params": node.consts["params"]})
    graph.prune()


def fuse_packs_into_conv_steps(graph: Graph) -> None:
    """The first ``pack`` reading a ``bconv_steps`` node's output becomes that node's second output.

    Only fused convs: a steps node's (the stem's batch norm) 32 channels pack faster on their own,
    two rows per word (measured)."""
    producers = graph.producers()
    for node in list(graph.nodes):
        if node.op != "pack":
            continue
        conv = producers.get(node.inputs[0])
        if conv is None or conv.op != "bconv_steps" or conv.extra_outputs:
            continue
        threshold = node.consts.get("threshold")
        if threshold is None:
            threshold = np.zeros(conv.consts["weight"].shape[0], np.float32)  # x < 0 is x - 0 < 0
        conv.attrs = {**conv.attrs, "pack_groups": node.attrs["groups"]}
        conv.consts = {**conv.consts, "pack_threshold": threshold}
        conv.extra_outputs = [node.output]
        graph.nodes.remove(node)


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


def _specs(graph: Graph):
    return graph.check()[1]

