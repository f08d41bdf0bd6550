"""The cost row of a tree ensemble (ReActXGB's head), for a model's ``cost_extra()``: comparisons per image,
paper size and the packed size numbnn's ``trees`` op stores."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.models.cost.records import FLOAT32_BYTES, REAL_BITS, LayerCost


def tree_ensemble_cost(name: str, trees: Iterable[tuple[Sequence[int], Sequence[int]]], n_classes: int,
                       leaf_size: int = 1, kind: str = "trees") -> LayerCost:
    """The cost row of a tree ensemble with a base margin per class, for a model's ``cost_extra()`` (ReActXGB).

    ``trees`` gives each tree as ``(left_children, right_children)`` in xgboost's JSON layout (node 0
    is the root, -1 marks a leaf). ``leaf_size`` is the number of values in each leaf: 1 for per-class
    trees, ``n_classes`` for vector-leaf trees (each leaf holds a margin for every class). Per image a
    tree makes at most ``depth`` comparisons (its longest root-to-leaf path), whatever its leaves hold;
    the row's ``comparisons`` and ``flops`` are the sum of these upper bounds.
    Size (an assumption; the ReActXGB paper's accounting was not available): a split node holds a
    feature index and a threshold, a leaf ``leaf_size`` values, the ensemble ``n_classes`` base margins,
    32 bits each; thresholds, leaf values and base margins are the ensemble's (real) params. The packed
    size is what numbnn's ``trees`` op stores (:mod:`numbnn.inference.trees`): 6 bytes and a bit per
    node, 4 bytes per value of a vector leaf, 4 x (trees + 1) + 2 x trees for the trees' node ranges
    and classes, 4 per class.
    """
    check_int(n_classes, "n_classes", 1)
    check_int(leaf_size, "leaf_size", 1)
    if leaf_size not in (1, n_classes):
        raise InputError(f"leaf_size must be 1 (per-class trees) or n_classes = {n_classes}, got {leaf_size}")
    row = LayerCost(str(name), str(kind))
    splits = leaves = n_trees = 0
    for index, (left, right) in enumerate(trees):
        tree_splits, tree_leaves, depth = _tree_shape(left, right, f"{name}[{index}]")
        splits, leaves, n_trees = splits + tree_splits, leaves + tree_leaves, n_trees + 1
        row.comparisons += depth
    nodes, vector_values = splits + leaves, (leaves * leaf_size if leaf_size > 1 else 0)
    row.real_params = splits + leaf_size * leaves + n_classes
    row.size_bits = REAL_BITS * (2 * splits + leaf_size * leaves + n_classes)
    row.packed_size_bytes = (6 * nodes + math.ceil(nodes / 8) + FLOAT32_BYTES * vector_values
                             + 4 * (n_trees + 1) + 2 * n_trees + FLOAT32_BYTES * n_classes)
    row.flops = row.comparisons
    row.calls = 1
    leaf_text = f"leaves of {leaf_size} values" if leaf_size > 1 else "one value per leaf"
    row.note = f"{n_trees} trees, {nodes} nodes, {leaf_text}; <= depth comparisons per tree"
    return row


def _tree_shape(left, right, where: str) -> tuple[int, int, int]:
    """(split nodes, leaves, depth in comparisons) of one tree given its child arrays."""
    left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
    if left.ndim != 1 or left.shape != right.shape or left.size == 0:
        raise InputError(f"{where}: left and right children must be equal-length, non-empty 1-d sequences")
    n = left.size
    if ((left < -1) | (left >= n) | (right < -1) | (right >= n)).any() or ((left == -1) != (right == -1)).any():
        raise InputError(f"{where}: child indices must be -1 (leaf, both sides) or a node index below {n}")
    depth_of = {0: 0}
    stack, seen = [0], set()
    while stack:
        node = stack.pop()
        if node in seen:
            raise InputError(f"{where}: node {node} is reached twice; not a tree")
        seen.add(node)
        if left[node] != -1:
            for child in (left[node], right[node]):
                depth_of[int(child)] = depth_of[node] + 1
                stack.append(int(child))
    if len(seen) != n:
        raise InputError(f"{where}: {n - len(seen)} node(s) are not reachable from the root")
    leaves = int((left == -1).sum())
    return n - leaves, leaves, max(depth_of.values())
