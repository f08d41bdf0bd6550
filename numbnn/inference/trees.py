"""ReActXGB's tree head without xgboost: the ensemble as flat arrays, evaluated by :mod:`numbnn.kernels.trees`.

Storage (the ``trees`` op's constants), each tree in pre-order (a node, then its whole left subtree,
then its right subtree), so a split's left child is the next node and only leaves need marking:

- ``feature`` int16 [nodes]: the feature a split compares, -1 for a leaf;
- ``value`` float32 [nodes]: a split's threshold, or a leaf's margin contribution;
- ``default_left`` uint8 [ceil(nodes / 8)]: bit-packed (numpy ``packbits``), where a NaN feature goes;
- ``tree_start`` int32 [trees + 1]: node ranges; ``tree_class`` int16 [trees]: the class a tree adds to;
- ``base`` float32 [classes]: the ensemble's base margin (xgboost's ``base_score``).

That is 6 bytes and 1 bit per node, the cost model's 8 bytes per split and 4 per leaf on average.
Prediction follows xgboost: go left iff ``x[feature] < threshold`` (NaN: ``default_left``); each class's
margin starts at its base margin and adds its trees' leaves in tree order, in float32.
"""

from __future__ import annotations

import json

import numpy as np

from numbnn.errors import InputError
from numbnn.inference.ops.base import GraphError, Op, Spec, const_array, expect, int_attr, register_op
from numbnn.kernels.trees import decode_pre_order, tree_margins


def from_xgboost_json(raw: bytes, n_features: int) -> dict:
    """The ``trees`` op's constants and attributes from an xgboost JSON model (multi-class gbtree)."""
    try:
        model = json.loads(raw)
        learner = model["learner"]
        booster = learner["gradient_booster"]
        if booster.get("name") != "gbtree":
            raise InputError(f"trees: only gbtree boosters are supported, got {booster.get('name')!r}")
        n_classes = int(learner["learner_model_param"]["num_class"])
        base = _base_score(learner["learner_model_param"]["base_score"], n_classes)
        trees, tree_info = booster["model"]["trees"], booster["model"]["tree_info"]
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"trees: not an xgboost JSON model ({type(error).__name__}: {error})") from None
    features, values, defaults, starts = [], [], [], [0]
    for index, tree in enumerate(trees):
        if any(t != 0 for t in tree.get("split_type", [])):
            raise InputError(f"trees: tree {index} has categorical splits, which are not supported")
        f, v, d = _pre_order(tree)
        features += f
        values += v
        defaults += d
        starts.append(len(features))
    consts = {
        "feature": np.array(features, np.int16),
        "value": np.array(values, np.float32),
        "default_left": np.packbits(np.array(defaults, np.uint8)),
        "tree_start": np.array(starts, np.int32),
        "tree_class": np.array(tree_info, np.int16),
        "base": base,
    }
    return {"attrs": {"n_features": int(n_features), "n_classes": n_classes, "n_nodes": len(features)},
            "consts": consts}


def _base_score(text, n_classes: int) -> np.ndarray:
    values = [float(v) for v in str(text).strip("[]").split(",")]
    if len(values) == 1:
        values = values * n_classes
    if len(values) != n_classes:
        raise ValueError(f"base_score has {len(values)} entries for {n_classes} classes")
    return np.array(values, np.float32)


def _pre_order(tree: dict):
    left, right = tree["left_children"], tree["right_children"]
    split_feature, condition, default_left = tree["split_indices"], tree["split_conditions"], tree["default_left"]
    features, values, defaults = [], [], []
    stack = [0]
    while stack:
        node = stack.pop()
        if left[node] == -1:
            features.append(-1)
            defaults.append(0)
        else:
            features.append(int(split_feature[node]))
            defaults.append(int(default_left[node]))
            stack += [right[node], left[node]]  # left is popped next: pre-order
        values.append(float(condition[node]))
    return features, values, defaults


class Trees(Op):
    """float32 margins [classes] of the tree ensemble on float32 features [n_features] (module docstring)."""

    name = "trees"
    const_names = ("feature", "value", "default_left", "tree_start", "tree_class", "base")

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
        self.base = const_array(consts, "base", self.name, np.float32, 1)
        expect(self.feature.shape == self.value.shape == (n_nodes,) and bits.size == (n_nodes + 7) // 8,
                "trees: node arrays disagree with n_nodes")
        expect(self.base.shape == (self.n_classes,), "trees: base needs one margin per class")
        expect(self.tree_class.size + 1 == self.tree_start.size and self.tree_class.size >= 1,
                "trees: tree_start needs one more entry than tree_class")
        expect(int(self.tree_start[0]) == 0 and int(self.tree_start[-1]) == n_nodes and (np.diff(self.tree_start) > 0).all(),
                "trees: tree_start must rise from 0 to n_nodes")
        expect(((self.tree_class >= 0) & (self.tree_class < self.n_classes)).all(), "trees: tree_class out of range")
        expect(((self.feature >= -1) & (self.feature < self.n_features)).all(), "trees: feature index out of range")
        self.default_left = np.unpackbits(bits)[:n_nodes].astype(np.bool_)
        self.right = _right_children(self.feature, self.tree_start)
        if self.right is None:
            raise GraphError("trees: a tree's pre-order node list is not a complete binary tree")

    def output_spec(self, specs):
        self._expect_inputs(specs, ["float32"])
        expect(specs[0].shape == (self.n_features,), f"trees: input must be [{self.n_features}] features, got {specs[0].shape}")
        return Spec("float32", (self.n_classes,))

    def __call__(self, x):
        out = np.empty((x.shape[0], self.n_classes), np.float32)
        tree_margins(np.ascontiguousarray(x, dtype=np.float32), self.feature, self.value, self.default_left,
                     self.right, self.tree_start, self.tree_class, self.base, out)
        return out


register_op(Trees)


def _right_children(feature, tree_start):
    """right[i] of every split node (-1 for leaves), or None if a tree's pre-order list is malformed."""
    right = np.full(feature.size, -1, np.int64)
    ok = decode_pre_order(feature.astype(np.int64), tree_start.astype(np.int64), right)
    return right if ok else None
