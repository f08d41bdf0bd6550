"""Rewrites that make a lowered graph fast without changing a single output bit (in the order run).

1. :func:`share_packs`: one ``pack`` per distinct (value, groups, threshold): two binary convs reading
   the same activation (ReActNet's duplicated 1x1 branches) pack it once.
2. :func:`repeated_inputs_as_other`: a residual made of channel copies (``concat([x] * k)``) is read
   as x with repeated channels; :func:`zero_padded_inputs_as_other`: a residual zero-padded along
   channels (PokeBNN's growing shortcut) is read unpadded, the padding's +0.0 added by the step;
   :func:`averaged_inputs_as_other`: a residual averaging groups of 2-7 channels (PokeBNN's channel shrink)
   is read from the ungrouped value, the step taking each group's mean.
3. :func:`merge_steps`: chains of ``elementwise`` nodes become one node, so alpha, batch norm, the
   residual add and RPReLU after a binary conv are one pass (same float32 steps in the same order). A
   residual read as the first input is swapped to the second when legal.
4. :func:`merge_concatenated_branches`: binary convs on the same packed input whose step outputs are
   concatenated (ReActNet's duplicated 1x1 branches) become one conv with the output channels of all,
   one steps node, and no concatenation.
5. :func:`fuse_squeeze_excite_gates`: a squeeze-and-excitation block's gate (spatial mean, steps, two linear
   layers with their steps, the reshape to one row per image) becomes one node, one parallel task per image
   running the same float32 operations (PokeBNN: seven nodes per block fewer, which at batch 1 cost more in
   dispatch than in arithmetic).
6. :func:`fold_into_packs`: a ``pack`` reading ``x + b`` / ``x - b`` / ``sign(x)`` packs x against the
   threshold -b / b / 0 instead (exact in floating point, see :class:`numbnn.inference.ops.Pack`):
   RSign's threshold is applied while packing.
7. :func:`fold_movements_into_packs` / :func:`fold_movements_into_steps`: packing, or per-channel
   steps on, a rearranged tensor (ShuffleNet's channel shuffle, RB-Net's space-to-depth, shifts and
   padding) read straight from the source through an index map instead.
   :func:`fold_shifts_into_gather_packs`: a ``gather_pack`` reading ``x + b`` / ``x - b`` (used by
   nothing else) adds b / -b to the elements it moves and reads x, the same float32 sums without a pass
   of their own (RB-Net's activation shift before each reshaped point-wise conv).
8. :func:`fold_accumulator_packs`: a ``pack`` of per-channel float steps of a binary layer's int32
   result (no residual in between) becomes integer thresholds on the accumulator (``pack_acc``), LCE's
   bitpacked output. The steps are evaluated in float32 on *every* accumulator value the layer can
   produce; a channel whose sign pattern is one switch gives threshold + flip (a negative scale flips
   the comparison), so the bits equal the float model's. A channel with more switches keeps the float
   path.
9. :func:`fuse_convolutions_and_steps`: a binary conv and the steps reading it run as one kernel, block
   by block, so the int32 results never go to memory.
10. :func:`fuse_packs_into_conv_steps`: a ``pack`` of a fused conv's float output is done by that conv,
   block by block while the rows are in the cache; the node then writes two values, the float output
   (ReActNet's next residual) and its packed signs (the next RSign), and nothing reads the float output
   a second time to pack it. Same comparison per element, same bits.
11. :func:`fuse_pools_into_conv_steps`: a 2x2 average pool that is the only reader of a fused conv's float
   output is done by that conv, block by block (blocks of whole row pairs): the strided blocks' shortcuts
   never read the full-size map back. Same sums in the same order.
12. :func:`fuse_moved_steps_into_conv_steps`: a fused conv's output read only through moves that carry whole
   runs of its channels to other pixels, by steps with a residual (RB-Net's depth-to-space, then batch norm,
   residual and RPReLU), becomes one node with them: the rows are stepped in the cache and moved, and the
   conv's own map is never written. Same operations per element, same bits.
13. :func:`fuse_gather_packs_into_moved_steps`: the next unit's ``gather_pack`` of such a node's output (RB-Net's
   shift, space-to-depth and signs) is done by that node from the values in its registers, 16 signs at a time:
   the map is still written for the residual, but not read back to be packed. Same comparisons, same bits.
14. :func:`fuse_steps_into_stems`: a stem convolution (one input channel, 3x3) and the steps reading it (its
   batch norm) run as one kernel, each output row stepped while in the cache. Same operations, same order.

One module per family of rewrite: :mod:`~numbnn.inference.fuse.packs` (1, 6, 7's shifts, 8),
:mod:`~numbnn.inference.fuse.steps` (2-4), :mod:`~numbnn.inference.fuse.gates` (5),
:mod:`~numbnn.inference.fuse.movements` (7) and :mod:`~numbnn.inference.fuse.convs` (9-14).
"""

from __future__ import annotations

from numbnn.inference.fuse.convs import (
    fuse_convolutions_and_steps, fuse_gather_packs_into_moved_steps, fuse_moved_steps_into_conv_steps,
    fuse_packs_into_conv_steps, fuse_pools_into_conv_steps, fuse_steps_into_stems,
)
from numbnn.inference.fuse.gates import fuse_squeeze_excite_gates
from numbnn.inference.fuse.movements import fold_movements_into_packs, fold_movements_into_steps
from numbnn.inference.fuse.packs import (
    fold_accumulator_packs, fold_into_packs, fold_shifts_into_gather_packs, share_packs,
)
from numbnn.inference.fuse.steps import (
    averaged_inputs_as_other, merge_concatenated_branches, merge_steps, repeated_inputs_as_other,
    zero_padded_inputs_as_other,
)
from numbnn.inference.graph import Graph


def optimize(graph: Graph) -> Graph:
    share_packs(graph)
    repeated_inputs_as_other(graph)
    zero_padded_inputs_as_other(graph)
    averaged_inputs_as_other(graph)
    merge_steps(graph)
    merge_concatenated_branches(graph)
    merge_steps(graph)
    fuse_squeeze_excite_gates(graph)
    fold_into_packs(graph)
    fold_movements_into_packs(graph)
    fold_shifts_into_gather_packs(graph)
    fold_movements_into_steps(graph)
    share_packs(graph)
    fold_accumulator_packs(graph)
    fuse_convolutions_and_steps(graph)
    fuse_packs_into_conv_steps(graph)
    fuse_pools_into_conv_steps(graph)
    fuse_moved_steps_into_conv_steps(graph)
    fuse_gather_packs_into_moved_steps(graph)
    fuse_steps_into_stems(graph)
    graph.prune()
    return graph
