"""Evaluation of boosted tree ensembles stored as flat pre-order node arrays (ReActXGB's head).

Trees are concatenated; tree t owns nodes tree_start[t] .. tree_start[t+1]-1 in pre-order: a split
node's left child follows it, its right child comes after the whole left subtree, so a tree needs no
child pointers on disk. :func:`decode_pre_order` recovers the right children once at load time, and
:func:`tree_margins` walks every tree for every row, adding leaf values in tree order, the order xgboost
sums them in. A tree adds to one class (``tree_class[t] >= 0``: its leaves hold one value, xgboost's
per-class trees) or to every class (``tree_class[t] == -1``: each leaf holds a vector of class margins,
a row of ``leaf_vectors``; xgboost's ``multi_output_tree``). Vector leaves are numbered in node order
across the ensemble (:func:`vector_leaf_rows`), which is pre-order tree by tree.
Explicit signatures, no bounds checks: the loader validates the arrays.
"""

import numba as nb
import numpy as np

from numbnn.kernels.typed import typed_njit


@typed_njit("boolean(int64[::1], int64[::1], int64[::1])", cache=True)
def decode_pre_order(feature, tree_start, right):
    """right[i] = index of split node i's right child; False if a tree's node range is not one complete
    pre-order tree. Walks each tree with a stack of the splits whose right subtree is still open."""
    stack = np.empty(feature.size + 1, np.int64)
    for t in range(tree_start.size - 1):
        depth = 0
        node = tree_start[t]
        end = tree_start[t + 1]
        while True:
            if node >= end:
                return False  # the tree needs more nodes than its range holds
            if feature[node] >= 0:
                stack[depth] = node  # its left child is node + 1; remember to fill in its right child
                depth += 1
                node += 1
                continue
            node += 1  # a leaf closes the innermost open split's current subtree
            if depth == 0:
                break
            depth -= 1
            right[stack[depth]] = node
        if node != end:
            return False  # nodes left over after the tree is complete
    return True


def vector_leaf_rows(feature: np.ndarray, tree_start: np.ndarray, tree_class: np.ndarray) -> np.ndarray:
    """int64 [nodes]: the ``leaf_vectors`` row of each leaf of a vector-leaf tree (numbered in node order),
    -1 for every other node. ``tree_start`` must already rise from 0 to ``feature.size``."""
    vector_leaf = (feature < 0) & (np.repeat(tree_class, np.diff(tree_start)) < 0)
    return np.where(vector_leaf, np.cumsum(vector_leaf) - 1, -1).astype(np.int64)


@typed_njit("void(float32[:, ::1], int16[::1], float32[::1], boolean[::1], int64[::1], int64[::1], int32[::1], int16[::1], "
         "float32[:, ::1], float32[::1], float32[:, ::1])", parallel=True, cache=True)
def tree_margins(x, feature, value, default_left, right, leaf_row, tree_start, tree_class, leaf_vectors, base, out):
    """out[r] = base + each tree's leaf for features x[r], trees in order, summed in float32 per class.

    A split node i sends x to its left child i + 1 if x[feature[i]] < value[i] (NaN: default_left[i]),
    else to right[i]. A leaf (feature -1) of a class tree adds value[leaf] to out[r, tree_class[t]]; a
    leaf of a vector tree (tree_class -1) adds leaf_vectors[leaf_row[leaf]] to every class."""
    for r in nb.prange(x.shape[0]):
        for k in range(base.size):
            out[r, k] = base[k]
        for t in range(tree_class.size):
            node = tree_start[t]
            while feature[node] >= 0:
                v = x[r, feature[node]]
                go_left = default_left[node] if np.isnan(v) else v < value[node]
                node = node + 1 if go_left else right[node]
            if tree_class[t] >= 0:
                out[r, tree_class[t]] += value[node]
            else:
                for k in range(base.size):
                    out[r, k] += leaf_vectors[leaf_row[node], k]
