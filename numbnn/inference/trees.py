"""ReActXGB's tree head without xgboost: the ensemble as flat arrays, evaluated by :mod:`numbnn.kernels.trees`.

Storage (the ``trees`` op's constants), each tree in pre-order (a node, then its whole left subtree,
then its right subtree), so a split's left child is the next node and only leaves need marking:

- ``feature`` int16 [nodes]: the feature a split compares, -1 for a leaf;
- ``value`` float32 [nodes]: a split's threshold, or a class tree's leaf margin (0 in a vector tree's leaf);
- ``default_left`` uint8 [ceil(nodes / 8)]: bit-packed (numpy ``packbits``), where a NaN feature goes;
- ``tree_start`` int32 [trees + 1]: node ranges; ``tree_class`` int16 [trees]: the class a tree adds to,
  or -1 for a vector-leaf tree, which adds to every class;
- ``leaf_vectors`` float32 [vector leaves, classes], only if some tree has class -1: the class margins
  of the vector trees' leaves, in node order (pre-order, tree after tree);
- ``base`` float32 [classes]: the ensemble's base margin (xgboost's ``base_score``).

That is 6 bytes and 1 bit per node, plus 4 bytes per class per vector leaf, plus 6 bytes per tree and
4 per class: :func:`numbnn.models.cost.tree_ensemble_cost`'s packed size. Files without vector trees are
unchanged; a reader from before ``leaf_vectors`` refuses one with it (an unexpected constant).
Prediction follows xgboost: go left iff ``x[feature] < threshold`` (NaN: ``default_left``); each class's
margin starts at its base margin and adds its trees' leaves in tree order, in float32.

xgboost's JSON model: a per-class tree (``size_leaf_vector`` 1) keeps a leaf's value in ``split_conditions``
and its class in ``tree_info``. A vector-leaf tree (``size_leaf_vector`` = classes; xgboost's
``multi_strategy="multi_output_tree"``, https://xgboost.readthedocs.io/en/stable/tutorials/multioutput.html)
keeps its leaves' vectors in ``leaf_weights`` [leaves x classes] and a leaf's ``right_children`` entry is
its row there. That is the layout xgboost 3.2 and later write (dmlc/xgboost,
``src/tree/multi_target_tree_model.cc``; the JSON schema document was dropped in 3.2), checked against
``Booster.predict(output_margin=True)`` in ``tests/test_inference_trees.py``; the earlier layout, without
``leaf_weights``, is refused.
"""

from __future__ import annotations

import json

import numpy as np

from numbnn.errors import InputError
from numbnn.inference.ops.base import GraphError, Op, Spec, const_array, expect, int_attr, register_op
from numbnn.kernels.trees import decode_pre_order, tree_margins, vector_leaf_rows


def from_xgboost_json(raw: bytes, n_features: int) -> dict:
    """The ``trees`` op's constants and attributes from an xgboost JSON model (multi-class gbtree, with
    per-class or vector-leaf trees)."""
    try:
        model = json.loads(raw)
        learner = model["learner"]
        booster = learner["gradient_booster"]
        if booster.get("name") != "gbtree":
            raise InputError(f"trees: only gbtree boosters are supported, got {booster.get('name')!r}")
        n_classes = int(learner["learner_model_param"]["num_class"])
        base = _base_score(learner["learner_model_param"]["base_score"], n_classes)
        trees, tree_info = booster["model"]["trees"], booster["model"]["tree_info"]
        features, values, defaults, vectors, starts, classes = [], [], [], [], [0], []
        for index, tree in enumerate(trees):
            if any(t != 0 for t in tree.get("split_type", [])):
                raise InputError(f"trees: tree {index} has categorical splits, which are not supported")
            leaf_size = int(tree["tree_param"].get("size_leaf_vector", 1))
            if leaf_size > 1:
                leaf_vector = _leaf_vector_reader(tree, leaf_size, n_classes, index)
                classes.append(-1)
            else:
                leaf_vector = None
                classes.append(int(tree_info[index]))
            f, v, d = _pre_order(tree, leaf_vector, vectors)
            features += f
            values += v
            defaults += d
            starts.append(len(features))
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise InputError(f"trees: not an xgboost JSON model ({type(error).__name__}: {error})") from None
    consts = {
        "feature": np.array(features, np.int16),
        "value": np.array(values, np.float32),
        "default_left": np.packbits(np.array(defaults, np.uint8)),
        "tree_start": np.array(starts, np.int32),
        "tree_class": np.array(classes, np.int16),
        "base": base,
    }
    if vectors:
        consts["leaf_vectors"] = np.array(vectors, np.float32).reshape(-1, n_classes)
    return {"attrs": {"n_features": int(n_features), "n_classes": n_classes, "n_nodes": len(features)},
            "consts": consts}


def _base_score(text, n_classes: int) -> np.ndarray:
    values = [float(v) for v in str(text).strip("[]").split(",")]
    if len(values) == 1:
        values = values * n_classes
    if len(values) != n_classes:
        raise ValueError(f"base_score has {len(values)} entries for {n_classes} classes")
    return np.array(values, np.float32)


def _leaf_vector_reader(tree: dict, leaf_size: int, n_classes: int, index: int):
    """node -> its leaf's class-margin vector, for a vector-leaf tree in xgboost >= 3.2's layout."""
    if leaf_size != n_classes:
        raise InputError(f"trees: tree {index} has leaves of {leaf_size} values for {n_classes} classes")
    if "leaf_weights" not in tree:
        raise InputError(f"trees: vector-leaf tree {index} has no leaf_weights (written by xgboost before 3.2); "
                         "refit it with xgboost >= 3.2")
    weights, right = tree["leaf_weights"], tree["right_children"]
    n_leaves = len(weights) // leaf_size
    if len(weights) != n_leaves * leaf_size:
        raise InputError(f"trees: tree {index}'s leaf_weights is not a whole number of {leaf_size}-vectors")

    def leaf_vector(node):
        row = int(right[node])
        if not 0 <= row < n_leaves:
            raise InputError(f"trees: tree {index}, leaf {node} points to leaf vector {row} of {n_leaves}")
        return [float(w) for w in weights[row * leaf_size:(row + 1) * leaf_size]]

    return leaf_vector


def _pre_order(tree: dict, leaf_vector, vectors: list):
    """A tree's (feature, value, default_left) lists in pre-order; a vector tree's leaf vectors are
    appended to ``vectors`` in the same order (``leaf_vector`` is None for a per-class tree)."""
    left, right = tree["left_children"], tree["right_children"]
    split_feature, condition, default_left = tree["split_indices"], tree["split_conditions"], tree["default_left"]
    features, values, defaults = [], [], []
    stack = [0]
    while stack:
        node = stack.pop()
        if left[node] == -1:
            features.append(-1)
            defaults.append(0)
            if leaf_vector is None:
                values.append(float(condition[node]))
            else:
                values.append(0.0)
                vectors += leaf_vector(node)
        else:
            features.append(int(split_feature[node]))
            defaults.append(int(default_left[node]))
            values.append(float(condition[node]))
            stack += [right[node], left[node]]  # left is popped next: pre-order
    return features, values, defaults


class Trees(Op):
    """float32 margins [classes] of the tree ensemble on float32 features [n_features] (module docstring)."""

    name = "trees"
    const_names = ("feature", "value", "default_left", "tree_start", "tree_class", "leaf_vectors", "base")

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.n_features = int_attr(attrs, "n_features", self.name, 1)
        self.n_classes = int_attr(attrs, "n_classes", self.name, 1)
        n_nodes = int_attr(attrs, "n_nodes", self.name, 1)
        self.feature = const_array(consts, "feature", self.name, np.int16, 1)
        self.value = const_array(consts, "value", self.name, np.float32, 1)
        bits = const_array(consts, "default_left", self.name, np.uint8, 1)
        self.tree_start = const_array(consts, "tree_start", self.name, np.int32, 1)
        self.tree_class = const_array(consts, "tree_class", self.name, np.int16, 1)
        leaf_vectors = const_array(consts, "leaf_vectors", self.name, np.float32, 2, optional=True)
        self.base = const_array(consts, "base", self.name, np.float32, 1)
        expect(self.feature.shape == self.value.shape == (n_nodes,) and bits.size == (n_nodes + 7) // 8,
                "trees: node arrays disagree with n_nodes")
        expect(self.base.shape == (self.n_classes,), "trees: base needs one margin per class")
        expect(self.tree_class.size + 1 == self.tree_start.size and self.tree_class.size >= 1,
                "trees: tree_start needs one more entry than tree_class")
        expect(int(self.tree_start[0]) == 0 and int(self.tree_start[-1]) == n_nodes and (np.diff(self.tree_start) > 0).all(),
                "trees: tree_start must rise from 0 to n_nodes")
        expect(((self.tree_class >= -1) & (self.tree_class < self.n_classes)).all(), "trees: tree_class out of range")
        expect(((self.feature >= -1) & (self.feature < self.n_features)).all(), "trees: feature index out of range")
        self.default_left = np.unpackbits(bits)[:n_nodes].astype(np.bool_)
        self.right = _right_children(self.feature, self.tree_start)
        if self.right is None:
            raise GraphError("trees: a tree's pre-order node list is not a complete binary tree")
        self.leaf_row = vector_leaf_rows(self.feature, self.tree_start, self.tree_class)
        n_vector_leaves = int((self.leaf_row >= 0).sum())
        if n_vector_leaves == 0:
            expect(leaf_vectors is None, "trees: leaf_vectors given, but no tree has vector leaves (class -1)")
            leaf_vectors = np.zeros((0, self.n_classes), np.float32)
        expect(leaf_vectors is not None and leaf_vectors.shape == (n_vector_leaves, self.n_classes),
                f"trees: leaf_vectors must be [{n_vector_leaves} vector leaves, {self.n_classes} classes], got "
                f"{None if leaf_vectors is None else leaf_vectors.shape}")
        self.leaf_vectors = leaf_vectors

    def output_spec(self, specs):
        self._expect_inputs(specs, ["float32"])
        expect(specs[0].shape == (self.n_features,), f"trees: input must be [{self.n_features}] features, got {specs[0].shape}")
        return Spec("float32", (self.n_classes,))

    def __call__(self, x):
        out = np.empty((x.shape[0], self.n_classes), np.float32)
        tree_margins(np.ascontiguousarray(x, dtype=np.float32), self.feature, self.value, self.default_left,
                     self.right, self.leaf_row, self.tree_start, self.tree_class, self.leaf_vectors, self.base, out)
        return out


register_op(Trees)


def _right_children(feature, tree_start):
    """right[i] of every split node (-1 for leaves), or None if a tree's pre-order list is malformed."""
    right = np.full(feature.size, -1, np.int64)
    ok = decode_pre_order(feature.astype(np.int64), tree_start.astype(np.int64), right)
    return right if ok else None
