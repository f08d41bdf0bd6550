"""numbnn.bench.train and `numbnn bench train`: a real (tiny) timed run, its projections and profile."""

import json

import pytest
from typer.testing import CliRunner

from numbnn.bench.train import profile_train_step, synthetic_batches, time_train_steps
from numbnn.cli.main import app
from numbnn.errors import InputError


def test_synthetic_batches_look_like_normalised_fashion_mnist():
    (x, y), *_ = synthetic_batches(5, count=1)
    assert x.shape == (5, 28, 28, 1) and x.dtype.name == "float32" and y.shape == (5,) and y.max() < 10
    assert -1.0 < x.min() < -0.7 and 2.0 < x.max() < 2.1  # (0 - mean) / std and (1 - mean) / std


def test_timed_steps_train_and_project_an_epoch():
    result = time_train_steps("bnn-small", batch_size=4, steps=3, warmup=1, threads=1)
    assert result["threads"] == {"numba": 1, "blas": 1}
    assert 0 < result["step_s_min"] <= result["step_s"]
    assert result["epoch_s"] == pytest.approx(result["step_s"] * 60000 / 4, rel=1e-3)
    assert result["images_per_s"] == pytest.approx(4 / result["step_s"], rel=1e-2)
    assert result["final_loss"] > 0 and len(result["load_average_1min"]) == 2


def test_profile_names_autograd_ops():
    profile = profile_train_step("bnn-small", batch_size=4, steps=1, warmup=0, threads=1, top=50)
    ops = {row["op"] for row in profile["top_ops"]}
    assert {"BinaryConv2d.forward", "BinaryConv2d.backward"} <= ops
    assert all(row["ms"] >= 0 and row["calls"] >= 1 for row in profile["top_ops"])
    assert profile["top_functions"][0]["own_ms"] >= profile["top_functions"][-1]["own_ms"]
    with pytest.raises(InputError, match="clock"):
        profile_train_step("bnn-small", batch_size=4, clock="gpu")


def test_bench_train_cli_json():
    result = CliRunner().invoke(app, ["bench", "train", "--model", "bnn-small", "--batch-size", "4", "--steps", "2",
                                      "--warmup", "0", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["model"] == "bnn-small" and report["batch_size"] == 4 and report["step_s"] > 0
    assert report["cpu_model"]
    assert "images/s" in result.stderr


def test_bench_train_cli_takes_model_arguments():
    """--model-arg reaches the timed model (typed as for `numbnn train`); a bad one is one clear error line."""
    base = ["bench", "train", "--model", "bnn-small", "--batch-size", "2", "--steps", "1", "--warmup", "0",
            "--threads", "1", "--json"]
    result = CliRunner().invoke(app, base + ["--model-arg", "widths=8,8,16,16,16"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["model_args"] == {"widths": [8, 8, 16, 16, 16]}
    bad = CliRunner().invoke(app, base + ["--model-arg", "no_such_argument=1"])
    assert bad.exit_code != 0 and "no_such_argument" in bad.output and "Traceback" not in bad.output


def test_bad_arguments_raise_input_error():
    with pytest.raises(InputError, match="steps"):
        time_train_steps("bnn-small", batch_size=4, steps=0)
    with pytest.raises(InputError, match="batch_size"):
        time_train_steps("bnn-small", batch_size=0, steps=1)
