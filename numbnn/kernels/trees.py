"""Evaluation of boosted tree ensembles stored as flat pre-order node arrays (ReActXGB's head).

Trees are concatenated; tree t owns nodes tree_start[t] .. tree_start[t+1]-1 in pre-order: a split
node's left child follows it, its right child comes after the whole left subtree, so a tree needs no
child pointers on disk. :func:`decode_pre_order` recovers the right children once at load time, and
:func:`tree_margins` walks every tree for every row, adding leaf values per class in tree order, the
order xgboost sums them in. Explicit signatures, no bounds checks: the loader validates the arrays.
"""

import numba as nb
import numpy as np


@nb.njit("boolean(int64[::1], int64[::1], int64[::1])", cache=True)
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


@nb.njit("void(float32[:, ::1], int16[::1], float32[::1], boolean[::1], int64[::1], int32[::1], int16[::1], float32[::1], "
         "float32[:, ::1])", parallel=True, cache=True)
def tree_margins(x, feature, value, default_left, right, tree_start, tree_class, base, out):
    """out[r, k] = base[k] + the leaf values of class k's trees for features x[r], trees in order (float32 sums).

    A split node i sends x to its left child i + 1 if x[feature[i]] < value[i] (NaN: default_left[i]),
    else to right[i]; a leaf (feature -1) holds its value."""
    for r in nb.prange(x.shape[0]):
        for k in range(base.size):
            out[r, k] = base[k]
        for t in range(tree_class.size):
            node = tree_start[t]
            while feature[node] >= 0:
                v = x[r, feature[node]]
                go_left = default_left[node] if np.isnan(v) else v < value[node]
                node = node + 1 if go_left else right[node]
            out[r, tree_class[t]] += value[node]
