"""ReActXGB's tree head outside xgboost: the ``trees`` op built from xgboost's JSON gives xgboost's margins,
for vector-leaf trees (the default: 20 trees, each leaf a margin per class) and per-class trees; the cost
model counts the 20 trees and prices a vector leaf as 10 values; checkpoints and packed files keep the
predictions; corrupt constants and JSON are refused with the module's errors.

The head is fitted on random 256-d features (the default network's pooled width), not on images.
"""

import copy
import functools
import json

import numpy as np
import pytest

import numbnn.io
import numbnn.inference
from numbnn.autograd import Tensor, no_grad
from numbnn.errors import InputError
from numbnn.inference.ops.base import GraphError, build_op
from numbnn.inference.trees import from_xgboost_json
from numbnn.models import build_model
from numbnn.models.cost import summarize
from numbnn.train.data import normalize

import xgboost  # the test extra installs it: missing, these tests fail rather than skip

FEATURES, CLASSES, TREES, DEPTH = 256, 10, 20, 3


@functools.cache
def fitted(leaves: str):
    """A default ReActXGB with its tree head fitted on random features whose labels depend on them."""
    rng = np.random.default_rng(0)
    features = rng.standard_normal((500, FEATURES)).astype(np.float32)
    labels = (features[:, :CLASSES] * 2 + rng.standard_normal((500, CLASSES))).argmax(axis=1)
    model = build_model("reactxgb", leaves=leaves)
    model.fit_trees(features, labels, threads=1)
    model.eval()
    return model, bytes(model.booster.save_raw(raw_format="json"))


@pytest.fixture(params=["vector", "scalar"])
def head(request):
    return (request.param, *fitted(request.param))


def test_the_trees_op_gives_xgboosts_margins(head):
    leaves, model, raw = head
    spec = from_xgboost_json(raw, FEATURES)
    consts = spec["consts"]
    assert consts["tree_class"].size == TREES
    if leaves == "vector":  # one tree per round, every leaf a margin per class
        assert (consts["tree_class"] == -1).all()
        assert consts["leaf_vectors"].shape == (int((consts["feature"] == -1).sum()), CLASSES)
    else:  # two rounds of one tree per class
        np.testing.assert_array_equal(consts["tree_class"], np.tile(np.arange(CLASSES), 2))
        assert "leaf_vectors" not in consts
    op = build_op("trees", spec["attrs"], consts)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, FEATURES)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values take each split's default direction
    expected = model.booster.predict(xgboost.DMatrix(x), output_margin=True)
    got = op(x)
    assert got.dtype == np.float32 and got.shape == expected.shape == (300, CLASSES)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    assert len(np.unique(got.argmax(axis=1))) > 1  # the trees do separate classes


def test_the_cost_model_counts_20_trees_and_prices_vector_leaves(head):
    leaves, model, raw = head
    report = summarize(model)
    row = next(layer for layer in report.layers if layer.name == "trees")
    trees = json.loads(raw)["learner"]["gradient_booster"]["model"]["trees"]
    n_leaves = sum(tree["left_children"].count(-1) for tree in trees)
    n_splits = sum(len(tree["left_children"]) for tree in trees) - n_leaves
    leaf_size = CLASSES if leaves == "vector" else 1
    assert len(trees) == TREES and row.note.startswith(f"{TREES} trees")
    assert row.real_params == n_splits + leaf_size * n_leaves + CLASSES  # thresholds, leaf values, base margins
    assert row.size_bits == 32 * (2 * n_splits + leaf_size * n_leaves + CLASSES)
    assert 0 < row.comparisons <= DEPTH * TREES
    spec = from_xgboost_json(raw, FEATURES)
    assert row.packed_size_bytes == sum(array.nbytes for array in spec["consts"].values())  # the op's arrays, exactly
    # the paper's size claim: the default head, at most 20 full depth-3 trees, is smaller than the FC it replaces
    booster = model.booster
    model.clear_trees()
    try:
        with_fc = summarize(model)
    finally:
        model.booster = booster
    fc = next(layer for layer in with_fc.layers if layer.name == "classifier")
    assert fc.size_bytes == (FEATURES * CLASSES + CLASSES) * 4 == 10_280
    bound = 4 * (TREES * (2 * (2**DEPTH - 1) + leaf_size * 2**DEPTH) + CLASSES)  # 7,560 bytes for vector leaves
    assert row.size_bytes <= bound < fc.size_bytes
    assert report.total.size_bytes == with_fc.total.size_bytes - fc.size_bytes + row.size_bytes
    assert f"classifier ({FEATURES * CLASSES + CLASSES:,} params, 10,280 bytes)" in " ".join(report.notes)


def test_checkpoints_and_packed_files_keep_the_predictions(head, tmp_path):
    _, model, _ = head
    images = np.random.default_rng(2).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    x = Tensor(normalize(images))
    with no_grad():
        before = model(x).data
    numbnn.io.save(model, tmp_path / "head.h5")
    loaded = numbnn.io.load(tmp_path / "head.h5")
    loaded.eval()
    with no_grad():
        np.testing.assert_array_equal(loaded(x).data, before)
    numbnn.inference.compile(loaded).save(tmp_path / "packed.h5")
    np.testing.assert_array_equal(numbnn.inference.load(tmp_path / "packed.h5").predict(images), before)


# ---- bad input ------------------------------------------------------------------------------------------


@pytest.fixture
def vector_spec():
    _, raw = fitted("vector")
    return raw, from_xgboost_json(raw, FEATURES)


def _corrupt_leaf_vectors():
    def missing(c):
        del c["leaf_vectors"]

    def a_row_short(c):
        c["leaf_vectors"] = c["leaf_vectors"][:-1]

    def a_class_short(c):
        c["leaf_vectors"] = np.ascontiguousarray(c["leaf_vectors"][:, :-1])

    def float64(c):
        c["leaf_vectors"] = c["leaf_vectors"].astype(np.float64)

    def flat(c):
        c["leaf_vectors"] = c["leaf_vectors"].ravel()

    def class_below_minus_one(c):
        c["tree_class"] = c["tree_class"].copy()
        c["tree_class"][0] = -2

    def vectors_without_vector_trees(c):
        c["tree_class"] = np.zeros_like(c["tree_class"])

    return [missing, a_row_short, a_class_short, float64, flat, class_below_minus_one, vectors_without_vector_trees]


@pytest.mark.parametrize("corrupt", _corrupt_leaf_vectors(), ids=lambda f: f.__name__)
def test_corrupt_vector_leaf_constants_are_refused(vector_spec, corrupt):
    _, spec = vector_spec
    consts = dict(spec["consts"])
    build_op("trees", spec["attrs"], consts)  # the untouched constants build
    corrupt(consts)
    with pytest.raises(GraphError, match="trees"):
        build_op("trees", spec["attrs"], consts)


def _corrupt_json():
    def no_leaf_weights(tree, model):  # the layout of xgboost before 3.2
        del tree["leaf_weights"]

    def leaf_row_outside(tree, model):
        leaf = tree["left_children"].index(-1)
        tree["right_children"][leaf] = len(tree["leaf_weights"]) // CLASSES

    def ragged_leaf_weights(tree, model):
        tree["leaf_weights"] = tree["leaf_weights"][:-1]

    def leaves_of_the_wrong_size(tree, model):
        model["learner"]["learner_model_param"]["num_class"] = "3"
        model["learner"]["learner_model_param"]["base_score"] = "[0,0,0]"

    return [no_leaf_weights, leaf_row_outside, ragged_leaf_weights, leaves_of_the_wrong_size]


@pytest.mark.parametrize("corrupt", _corrupt_json(), ids=lambda f: f.__name__)
def test_corrupt_vector_leaf_json_is_refused(vector_spec, corrupt):
    raw, _ = vector_spec
    model = copy.deepcopy(json.loads(raw))
    corrupt(model["learner"]["gradient_booster"]["model"]["trees"][-1], model)
    with pytest.raises(InputError, match="trees"):
        from_xgboost_json(json.dumps(model).encode(), FEATURES)
