"""ReActXGB: the tree head is fitted after the FC training, stored in the checkpoint as XGBoost JSON,
reloaded to identical predictions, priced by the cost model, and a missing xgboost is a clear error.

One tiny run (narrow widths, a few hundred FashionMNIST images, 3 vector-leaf trees of depth 3) is shared.
"""

import builtins
import json

import numpy as np
import pytest

from typer.testing import CliRunner

import numbnn.io
from numbnn.autograd import Tensor, no_grad
from numbnn.cli.main import app
from numbnn.errors import CheckpointError, InputError, MissingDependencyError
from numbnn.models import build_model
from numbnn.models.cost import summarize
from numbnn.models.reactxgb import TREES_ARRAY
from numbnn.train import recipes, run
from numbnn.train.data import load_split, normalize

import xgboost  # noqa: F401  (the test extra installs it: missing, these tests fail rather than skip)

TINY = {"widths": (8, 16, 16), "stem_stride": 2, "trees": 3, "max_depth": 3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("reactxgb") / "run.h5"
    outcome = run.train("reactxgb", options={"epochs": 1, "limit": 300, "test_limit": 100, "batch_size": 50},
                        model_args=TINY, out=path, progress=False)
    return path, outcome


def _test_batch(n=64):
    images, _ = load_split("test", n)
    return Tensor(normalize(images))


def test_both_heads_are_reported_side_by_side(trained):
    _, outcome = trained
    last = outcome.result.history[-1]
    assert last["trees"] == 3  # trees in total: 3 rounds of one vector-leaf tree each
    for key in ("fc_test_accuracy", "tree_test_accuracy"):
        assert 0.0 <= last[key] <= 1.0
    assert last["test_accuracy"] == last["tree_test_accuracy"]  # the deployed head
    assert "FC head" in recipes.heads_line(last) and "tree head" in recipes.heads_line(last)


def test_trees_are_stored_as_json_and_reload_to_identical_predictions(trained):
    path, _ = trained
    stored = numbnn.io.load_checkpoint(path)
    blob = stored.arrays[TREES_ARRAY]
    model_json = json.loads(bytes(blob) if isinstance(blob, (bytes, bytearray)) else np.asarray(blob).tobytes())
    trees = model_json["learner"]["gradient_booster"]["model"]["trees"]
    assert len(trees) == 3 and all(tree["tree_param"]["size_leaf_vector"] == "10" for tree in trees)
    assert stored.history[-1]["tree_test_accuracy"] == trained[1].result.history[-1]["tree_test_accuracy"]

    first, second = numbnn.io.load(path), numbnn.io.load(path)
    assert first.has_trees
    first.eval(), second.eval()
    x = _test_batch()
    with no_grad():
        tree_logits = first(x).data
        assert np.array_equal(tree_logits, second(x).data)
        fc_logits = first.fc_logits(x).data
    assert not np.allclose(tree_logits, fc_logits)  # eval mode really uses the trees
    # and the reloaded trees are the ones evaluated during training: same test accuracy
    assert run.evaluate_checkpoint(path, limit=100, progress=False).accuracy == stored.history[-1]["tree_test_accuracy"]


def test_eval_measures_either_head_of_a_checkpoint(trained, tmp_path):
    path, outcome = trained
    last = outcome.result.history[-1]
    assert run.evaluate_checkpoint(path, limit=100, progress=False, fc_head=True).accuracy == last["fc_test_accuracy"]
    result = CliRunner().invoke(app, ["eval", str(path), "--limit", "100", "--fc-head", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["accuracy"] == last["fc_test_accuracy"]
    refused = CliRunner().invoke(app, ["eval", str(path), "--packed", "--fc-head"])
    assert refused.exit_code == 2 and "deployed head" in refused.output
    other = tmp_path / "bnn.h5"
    numbnn.io.save(build_model("bnn-small", widths=(8, 8, 16)), other)
    with pytest.raises(InputError, match="tree head"):
        run.evaluate_checkpoint(other, limit=10, progress=False, fc_head=True)


@pytest.mark.parametrize("args, message", [
    ({"leaves": "matrix"}, "leaves"),
    ({"leaves": "scalar", "trees": 25}, "multiple of 10"),
    ({"trees": 0}, "trees"),
])
def test_bad_tree_options_are_refused(args, message):
    with pytest.raises(InputError, match=message):
        build_model("reactxgb", **{**TINY, **args})


def test_training_mode_and_unfitted_model_use_the_fc_head(trained):
    model = numbnn.io.load(trained[0])
    x = _test_batch(8)
    with no_grad():
        model.train()
        assert np.array_equal(model(x).data, model.fc_logits(x).data)
        model.eval()
        model.clear_trees()
        assert np.array_equal(model(x).data, model.fc_logits(x).data)
    assert model.checkpoint_arrays() == {}


def test_cost_model_prices_the_trees_instead_of_the_classifier(trained):
    model = numbnn.io.load(trained[0])
    with_trees = summarize(model).as_dict()
    names = [layer["name"] for layer in with_trees["layers"]]
    assert "trees" in names and "classifier" not in names
    model.clear_trees()
    without = summarize(model).as_dict()
    assert "classifier" in [layer["name"] for layer in without["layers"]]
    assert with_trees["total"]["bops"] == without["total"]["bops"]


@pytest.fixture
def no_xgboost(monkeypatch):
    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "xgboost" or name.startswith("xgboost."):
            raise ImportError("No module named 'xgboost'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)


def test_missing_xgboost_is_a_clear_error(trained, no_xgboost):
    model = build_model("reactxgb", **TINY)
    with no_grad():
        assert model(_test_batch(2)).shape == (2, 10)  # building and the FC head need no xgboost
    with pytest.raises(MissingDependencyError, match=r"numbnn\[xgb\]"):
        model.fit_trees(np.zeros((20, 16), np.float32), np.arange(20) % 10)
    with pytest.raises(MissingDependencyError, match="xgboost"):
        numbnn.io.load(trained[0])


def test_a_stored_blob_that_is_not_json_is_refused():
    model = build_model("reactxgb", **TINY)
    with pytest.raises(CheckpointError):
        model.load_checkpoint_arrays({TREES_ARRAY: b"\x00binary"})
    with pytest.raises(CheckpointError):
        model.load_checkpoint_arrays({TREES_ARRAY: b'{"not": "a model"}'})

