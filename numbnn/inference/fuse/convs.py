"""Kernel fusion: a binary conv and the steps reading it run as one kernel (``bconv_steps``), which then
also packs its float output for the next sign, and averages it over 2x2 windows for a shortcut, or moves
its rows to other pixels and runs the steps after the move (``bconv_moved_steps``); a stem conv and its
batch norm run as one kernel too (``conv2d_steps``)."""

from __future__ import annotations

from numbnn.inference.graph import Graph, Node
from numbnn.kernels.binary_conv_driver import CONV_BLOCK
from numbnn.kernels.depthwise import is_stem_3x3
from numbnn.inference.ops.binary import packs_moved_output
from numbnn.inference.ops.packing import GatherPack, channel_shuffle_groups, moved_rows, quarter_packing


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


def fuse_moved_steps_into_conv_steps(graph: Graph) -> None:
    """An ``elementwise`` node that reads a ``bconv_steps`` node's output through moves carrying whole runs of
    its channels to other pixels (:func:`~numbnn.inference.ops.packing.moved_rows`; RB-Net's depth-to-space
    after each reshaped point-wise conv, folded in by ``fold_movements_into_steps``) and a residual, the conv's
    only reader, becomes one ``bconv_moved_steps`` node: the conv's own map is never written."""
    producers = graph.producers()
    for index, node in enumerate(graph.nodes):
        if node.op != "elementwise" or "moves" not in node.attrs or len(node.inputs) != 2:
            continue
        conv = producers.get(node.inputs[0])
        if (conv is None or conv.op != "bconv_steps" or conv.extra_outputs or len(conv.inputs) != 1
                or graph.use_count(conv.output) != 1 or "pack_groups" in conv.attrs or "pool_size" in conv.attrs
                or moved_rows(node.attrs["source_shape"], node.attrs["moves"], node.op) is None):
            continue
        attrs = {**conv.attrs, "moved_stages": node.attrs["stages"], "source_shape": node.attrs["source_shape"],
                 "moves": node.attrs["moves"]}
        graph.nodes[index] = Node("bconv_moved_steps", [conv.inputs[0], node.inputs[1]], node.output, attrs,
                                  {**conv.consts, "moved_params": node.consts["params"]})
    graph.prune()


def fuse_gather_packs_into_moved_steps(graph: Graph) -> None:
    """The first ``gather_pack`` reading a ``bconv_moved_steps`` node's output whose moves carry whole 16-channel
    groups (:func:`~numbnn.inference.ops.packing.quarter_packing`; RB-Net's next unit: the shift, space-to-depth
    and signs of this unit's output) becomes that node's second output, packed from the registers: the map is
    written (the next residual reads it) but not read back to be packed. Same comparison per element, same bits."""
    producers = graph.producers()
    specs = graph.value_specs()
    for node in list(graph.nodes):
        if node.op != "gather_pack" or node.attrs.get("groups", 1) != 1:
            continue
        conv = producers.get(node.inputs[0])
        if conv is None or conv.op != "bconv_moved_steps" or conv.extra_outputs or conv.output != node.inputs[0]:
            continue
        if (not packs_moved_output(conv.attrs["stages"], conv.attrs["moved_stages"], specs[conv.output].shape[-1])
                or quarter_packing(GatherPack(node.attrs, node.consts)) is None):
            continue
        conv.attrs = {**conv.attrs, "pack_moves": node.attrs["moves"], "pack_source_shape": node.attrs["source_shape"]}
        conv.consts = {**conv.consts, **{f"pack_{name}": node.consts[name] for name in ("threshold", "shift")
                                         if node.consts.get(name) is not None}}
        conv.extra_outputs = [node.output]
        graph.nodes.remove(node)


def fuse_steps_into_stems(graph: Graph) -> None:
    """A stem ``conv2d`` (:func:`~numbnn.kernels.depthwise.is_stem_3x3`, no bias) read only by an
    ``elementwise`` node whose steps read no second input becomes one ``conv2d_steps`` node: each output row
    goes through the steps (the stem's batch norm) while it is in the cache."""
    producers = graph.producers()
    for index, node in enumerate(graph.nodes):
        if node.op != "elementwise" or len(node.inputs) != 1 or "moves" in node.attrs:
            continue
        conv = producers.get(node.inputs[0])
        if conv is None or conv.op != "conv2d" or graph.use_count(conv.output) != 1 or "bias" in conv.consts:
            continue
        weight = conv.consts["weight"]
        if conv.attrs.get("groups", 1) != 1 or not is_stem_3x3(weight.shape):
            continue
        graph.nodes[index] = Node("conv2d_steps", [conv.inputs[0]], node.output,
                                  {**conv.attrs, "stages": node.attrs["stages"]},
                                  {"weight": weight, "params": node.consts["params"]})
    graph.prune()


def fuse_packs_into_conv_steps(graph: Graph) -> None:
    """The first ``pack`` reading a ``bconv_steps`` node's output becomes that node's second output; so
    does a ``gather_pack`` of a channel shuffle (the same permutation of every pixel's channels), its moves kept
    as the node's ``pack_moves`` (and ``pack_source_shape``).

    Only fused convs: a steps node's (the stem's batch norm) 32 channels pack faster on their own,
    two rows per word (measured)."""
    producers = graph.producers()
    for node in list(graph.nodes):
        if node.op not in ("pack", "gather_pack"):
            continue
        conv = producers.get(node.inputs[0])
        if conv is None or conv.op != "bconv_steps" or conv.extra_outputs:
            continue
        shuffle = node.op == "gather_pack"
        if shuffle and channel_shuffle_groups(node.attrs["source_shape"], node.attrs["moves"], node.op) is None:
            continue
        conv.attrs = {**conv.attrs, "pack_groups": node.attrs["groups"]}
        if shuffle:
            conv.attrs.update(pack_moves=node.attrs["moves"], pack_source_shape=node.attrs["source_shape"])
        if node.consts.get("threshold") is not None:  # none: bit = y < 0
            conv.consts = {**conv.consts, "pack_threshold": node.consts["threshold"]}
        conv.extra_outputs = [node.output]
        graph.nodes.remove(node)



def fuse_pools_into_conv_steps(graph: Graph) -> None:
    """A 2x2, stride-2 ``avg_pool`` ("same") that is the only reader of a ``bconv_steps`` node's float output
    is done by that node, block by block while the rows are in the cache (``pool_size`` 2: the pooled value
    becomes its last output): the downsampling shortcut of ReActNet's and bnn-small's strided blocks and
    FTBNN's stages. Same sums in the same order, same bits."""
    producers = graph.producers()
    specs = graph.value_specs()
    for node in list(graph.nodes):
        if node.op != "avg_pool" or node.attrs.get("padding") != "same":
            continue
        if list(node.attrs.get("kernel_size", [])) != [2, 2] or list(node.attrs.get("stride", [])) != [2, 2]:
            continue
        conv = producers.get(node.inputs[0])
        if (conv is None or conv.op != "bconv_steps" or conv.output != node.inputs[0] or "pool_size" in conv.attrs
                or graph.use_count(conv.output) != 1 or 2 * specs[conv.output].shape[1] > CONV_BLOCK):
            continue
        conv.attrs = {**conv.attrs, "pool_size": 2}
        conv.extra_outputs = [*conv.extra_outputs, node.output]
        graph.nodes.remove(node)
