"""Movement rewrites: a ``pack`` or ``elementwise`` node reading a rearranged tensor (reshapes, transposes,
slices, padding, channel shuffles) reads the source through an index map instead."""

from __future__ import annotations

from numbnn.inference.graph import Graph, Node
from numbnn.inference.ops import MOVEMENTS

def fold_movements_into_packs(graph: Graph) -> None:
    """A ``pack`` of values only moved around (reshapes, transposes, slices, padding, concatenations of
    one source) becomes a ``gather_pack`` of the source, the moves kept as its description. Moving a
    value never changes its sign, so the bits are the same."""
    producers = graph.producers()
    specs = graph.value_specs()
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
    specs = graph.value_specs()
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
