"""`numbnn train`, `numbnn eval`, `numbnn models` through typer's CliRunner: an end-to-end run on a few
hundred images, Ctrl-C and resume, a diverging loss, and bad options (one `error:` line, no traceback)."""

import json
import os
import signal

import numpy as np
import pytest
from typer.testing import CliRunner

import numbnn.functional as F
import numbnn.io
from numbnn.cli.main import app

runner = CliRunner()
SMALL = ["--limit", "64", "--test-limit", "50", "--batch-size", "32"]


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _last_json(result):
    return json.loads(result.stdout.strip().splitlines()[-1])


def _assert_one_error_line(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0]


def test_train_then_eval_reloads_to_the_reported_accuracy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _invoke("train", "--model", "bnn-small", "--epochs", 1, "--limit", 300, "--test-limit", 500,
                     "--batch-size", 32, "--json")
    assert result.exit_code == 0, result.output
    summary = _last_json(result)
    assert summary["epochs"] == 1 and 0.0 <= summary["test_accuracy"] <= 1.0
    assert summary["seconds"] > 0 and summary["images_per_s"] > 0
    checkpoint = summary["checkpoint"]
    assert checkpoint.startswith("runs/bnn-small-") and checkpoint.endswith(".h5")  # the default --out
    assert (tmp_path / checkpoint).is_file() and checkpoint in result.stdout
    assert "epoch 1/1" in result.output  # the per-epoch line on stderr

    evaluated = _invoke("eval", checkpoint, "--limit", 500, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    report = _last_json(evaluated)
    assert report["n"] == 500 and report["accuracy"] == summary["test_accuracy"]


def test_ctrl_c_saves_a_resumable_checkpoint_and_resume_finishes(tmp_path, monkeypatch):
    import numbnn.train.loop as loop

    calls = {"n": 0}
    original = loop.train_step

    def step_then_sigint(*args):
        out = original(*args)
        calls["n"] += 1
        if calls["n"] == 3:  # epoch 2, step 1 of 2
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(loop, "train_step", step_then_sigint)
    path = tmp_path / "run.h5"
    result = _invoke("train", "--model", "bnn-small", "--epochs", 3, *SMALL, "--out", path)
    assert result.exit_code == 130, result.output
    assert "Traceback" not in result.output and f"numbnn train --resume {path}" in result.output
    saved = numbnn.io.load_checkpoint(path)
    assert (saved.epoch, saved.extra["step"]) == (1, 1)

    monkeypatch.setattr(loop, "train_step", original)
    resumed = _invoke("train", "--resume", path, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert _last_json(resumed)["epochs"] == 3 and numbnn.io.load_checkpoint(path).epoch == 3


def test_non_finite_loss_is_one_error_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = F.cross_entropy

    def nan_in_second_epoch(logits, labels, label_smoothing=0.0):
        calls["n"] += 1
        loss = original(logits, labels, label_smoothing=label_smoothing)
        return loss * np.float32("nan") if calls["n"] == 4 else loss

    monkeypatch.setattr(F, "cross_entropy", nan_in_second_epoch)
    path = tmp_path / "run.h5"
    result = _invoke("train", "--model", "bnn-small", "--epochs", 2, *SMALL, "--out", path)
    _assert_one_error_line(result, "diverged", "epoch 2, step 2/2")
    assert numbnn.io.load_checkpoint(path).epoch == 1


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["train", "--model", "bnn-smal"], ["unknown model 'bnn-smal'", "did you mean 'bnn-small'"]),
        (["train", "--model", "bnn-small", "--epochs", "-1"], ["epochs"]),
        (["train", "--model", "bnn-small", "--batch-size", "0"], ["batch_size"]),
        (["train", "--model", "bnn-small", "--optimizer", "adamax"], ["unknown optimizer 'adamax'"]),
        (["train", "--model", "bnn-small", "--lr", "-0.1"], ["lr"]),
        (["train", "--model", "bnn-small", "--threads", "0"], ["threads"]),
        (["train", "--model", "bnn-small", "--teacher", "missing.h5"], ["--teacher", "missing.h5"]),
        (["train", "--resume", "missing.h5"], ["--resume", "missing.h5"]),
        (["train"], ["--model is required"]),
        (["eval", "missing.h5"], ["missing.h5"]),
        (["eval", "not-hdf5.h5"], ["not-hdf5.h5"]),
        (["train", "--model", "bnn-small", "--limit", "32", "--out", "not-hdf5.h5/run.h5"], ["--out", "not-hdf5.h5"]),
    ],
)
def test_bad_options_give_one_error_line(args, fragments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-hdf5.h5").write_text("this is not an HDF5 file\n")
    _assert_one_error_line(_invoke(*args), *fragments)


def test_eval_refuses_a_bad_limit(tmp_path):
    path = tmp_path / "m.h5"
    from numbnn.models import build_model

    numbnn.io.save(build_model("bnn-small"), path)
    _assert_one_error_line(_invoke("eval", path, "--limit", 0), "limit")


def test_models_json_lists_the_registry_with_recipes():
    result = _invoke("models", "--json")
    assert result.exit_code == 0, result.output
    entries = {entry["name"]: entry for entry in _last_json(result)["models"]}
    assert {"bnn-small", "float-cnn"} <= set(entries)
    assert entries["bnn-small"]["recipe"]["optimizer"] == "adam" and entries["bnn-small"]["summary"]


def test_models_table_and_train_help():
    table = _invoke("models")
    assert table.exit_code == 0 and "bnn-small" in table.stdout
    help_text = _invoke("train", "--help")
    assert help_text.exit_code == 0 and "--resume" in help_text.output and "recipe" in help_text.output


def test_augmentation_options_reach_the_run_settings(tmp_path):
    from numbnn.train.checkpoint import read_training_state

    out = tmp_path / "run.h5"
    result = _invoke("train", "--model", "bnn-small", "--model-arg", "widths=8,8,16", "--epochs", 1, *SMALL,
                     "--teacher", "none", "--crop-padding", 1, "--flip", "--out", out)
    assert result.exit_code == 0, result.output
    config = read_training_state(out).config
    assert (config.crop_padding, config.flip) == (1, True)  # the recipe says 0 and False
