"""numbnn.kernels.trees against its naive twins: decoded children and margins must match exactly."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from numbnn.kernels.trees import decode_pre_order, tree_margins, vector_leaf_rows


def random_tree(rng, features, depth):
    """Pre-order (feature, value) lists of a random complete binary tree."""
    if depth == 0 or rng.random() < 0.3:
        return [(-1, float(rng.standard_normal()))]
    node = [(int(rng.integers(0, features)), float(rng.standard_normal()))]
    return node + random_tree(rng, features, depth - 1) + random_tree(rng, features, depth - 1)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 3), st.integers(1, 6), st.integers(1, 20),
       st.sampled_from(["scalar", "vector", "mix"]), st.integers(0, 2**32 - 1))
def test_tree_margins_match_naive(n_trees, n_classes, features, rows, leaves, seed):
    """Class trees (a value per leaf), vector trees (a class-margin vector per leaf) and a mix of both."""
    rng = np.random.default_rng(seed)
    trees = [random_tree(rng, features, 4) for _ in range(n_trees)]
    feature = np.array([f for t in trees for f, _ in t], np.int16)
    value = np.array([v for t in trees for _, v in t], np.float32)
    tree_start = np.cumsum([0] + [len(t) for t in trees]).astype(np.int32)
    tree_class = (np.arange(n_trees) % n_classes).astype(np.int16)
    if leaves != "scalar":
        vector = np.ones(n_trees, bool) if leaves == "vector" else rng.random(n_trees) < 0.5
        tree_class[vector] = -1
    leaf_row = vector_leaf_rows(feature, tree_start, tree_class)
    n_vector_leaves = int((leaf_row >= 0).sum())
    assert n_vector_leaves == sum(sum(f < 0 for f, _ in t) for t, c in zip(trees, tree_class) if c < 0)
    leaf_vectors = rng.standard_normal((n_vector_leaves, n_classes)).astype(np.float32)
    default_left = rng.random(feature.size) < 0.5
    base = rng.standard_normal(n_classes).astype(np.float32)
    x = rng.standard_normal((rows, features)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    x[0, 0] = value[0]  # a value equal to a split threshold goes right (not below)
    right = np.full(feature.size, -1, np.int64)
    assert decode_pre_order(feature.astype(np.int64), tree_start.astype(np.int64), right)
    np.testing.assert_array_equal(right, naive.decode_pre_order(feature, tree_start))
    out = np.empty((rows, n_classes), np.float32)
    tree_margins(x, feature, value, default_left, right, leaf_row, tree_start, tree_class, leaf_vectors, base, out)
    np.testing.assert_array_equal(
        out, naive.tree_margins(x, feature, value, default_left, right, tree_start, tree_class, leaf_vectors, base))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([-1, 0]), min_size=1, max_size=12))
def test_decode_pre_order_rejects_what_the_naive_twin_rejects(kinds):
    """Any leaf/split sequence as one tree: malformed iff the recursion runs out of nodes or leaves some over."""
    feature = np.array(kinds, np.int64)
    tree_start = np.array([0, feature.size], np.int64)
    right = np.full(feature.size, -1, np.int64)
    expected = naive.decode_pre_order(feature, tree_start)
    assert decode_pre_order(feature, tree_start, right) == (expected is not None)
    if expected is not None:
        np.testing.assert_array_equal(right, expected)
