"""``numbnn summary``: JSON keys and figures, the table, checkpoints, and one-line errors for bad input."""

import json

import pytest
from typer.testing import CliRunner

from numbnn.cli.main import app
import numbnn.io
from numbnn.models import build_model, register_model
from numbnn.models.registry import model_spec
from numbnn.errors import UnknownModelError
from numbnn.nn import BinaryConv2d, Conv2d, Linear, Module
import numbnn.functional as F
from numbnn.train.config import make_config

runner = CliRunner()
TOTAL_KEYS = {"params", "binary_params", "size_bytes", "flops", "bops", "ops", "ace"}


class CliTiny(Module):
    """float conv 1->4 (28x28) -> binary conv 4->8 stride 2 (14x14) -> pool -> linear 8->3."""

    def __init__(self, width: int = 8, in_channels: int = 1):
        self.stem = Conv2d(in_channels, 4, 3, padding=1)
        self.binary = BinaryConv2d(4, width, 3, stride=2, padding=1)
        self.head = Linear(width, 3)

    def forward(self, x):
        return self.head(F.global_avg_pool(self.binary(self.stem(x))))


try:
    model_spec("cli-summary-tiny")
except UnknownModelError:
    register_model("cli-summary-tiny", summary="test model for the summary CLI")(CliTiny)


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_json_keys_and_figures():
    out = _json(runner.invoke(app, ["summary", "--model", "cli-summary-tiny", "--json"]))
    assert TOTAL_KEYS <= set(out["total"])
    assert isinstance(out["layers"], list) and [row["name"] for row in out["layers"]] == ["stem", "binary", "head"]
    total = out["total"]
    assert total["flops"] == 28 * 28 * 9 * 1 * 4 + 8 * 3
    assert total["bops"] == 14 * 14 * 9 * 4 * 8
    assert total["ops"] == total["bops"] / 64 + total["flops"]
    assert total["ace"] == 256 * total["flops"] + total["bops"]
    assert (total["binary_params"], total["params"]) == (288, 36 + 288 + 27)
    assert total["size_bytes"] == (288 + 32 * (36 + 27)) // 8
    assert any("1 bit" in line for line in out["conventions"])


def test_model_args_and_input_size():
    base = _json(runner.invoke(app, ["summary", "-m", "cli-summary-tiny", "--json"]))["total"]
    wide_args = ["summary", "-m", "cli-summary-tiny", "--model-arg", "width=16", "--json"]
    wide = _json(runner.invoke(app, wide_args))["total"]
    assert wide["bops"] == 2 * base["bops"]
    big = _json(runner.invoke(app, ["summary", "-m", "cli-summary-tiny", "--input-size", "56", "--json"]))
    assert big["total"]["bops"] == 4 * base["bops"] and big["input_shape"] == [1, 56, 56, 1]
    rgb = _json(runner.invoke(app, ["summary", "-m", "cli-summary-tiny", "--model-arg", "in_channels=3", "--json"]))
    assert rgb["input_shape"] == [1, 28, 28, 3] and rgb["total"]["flops"] == 3 * 28 * 28 * 9 * 4 + 8 * 3


def test_table():
    result = runner.invoke(app, ["summary", "--model", "cli-summary-tiny"])
    assert result.exit_code == 0, result.output
    for text in ("total", "BOPs", "ACE", "OPs = BOPs/64 + FLOPs", "binary weights at 1 bit"):
        assert text in result.stdout, text
    row = next(line for line in result.stdout.splitlines() if "BinaryConv2d" in line)
    assert "binary" in row and "1 x 1" in row and "14x14x8" in row and "56.4k" in row  # 14*14*9*4*8 BOPs


def test_reactnet_a_tiny_from_the_command_line():
    args = ["summary", "-m", "reactnet-a", "--model-arg", "widths=[32,64,128,128,256,256]",
            "--model-arg", "stem_stride=1", "--json"]
    total = _json(runner.invoke(app, args))["total"]
    assert round(total["bops"] / 1e6, 1) == 90.7  # derived by hand in tests/test_cost.py
    assert round(total["ops"] / 1e6, 2) == 1.65


def test_checkpoint_gives_the_same_figures(tmp_path):
    path = tmp_path / "tiny.h5"
    numbnn.io.save(build_model("cli-summary-tiny", width=16), path)
    from_file = _json(runner.invoke(app, ["summary", str(path), "--json"]))
    from_name = _json(runner.invoke(app, ["summary", "-m", "cli-summary-tiny", "--model-arg", "width=16", "--json"]))
    assert from_file["total"] == from_name["total"]


@pytest.mark.parametrize("args, message", [
    (["--model", "cli-summary-tinyy"], "did you mean 'cli-summary-tiny'"),
    (["no/such/file.h5"], "no such file"),
    ([], "exactly one of"),
    (["x.h5", "--model", "cli-summary-tiny"], "exactly one of"),
    (["--model", "cli-summary-tiny", "--model-arg", "width"], "KEY=VALUE"),
    (["--model", "cli-summary-tiny", "--model-arg", "depth=3"], "has no argument 'depth'"),
    (["--model", "cli-summary-tiny", "--input-size", "0"], "input size"),
])
def test_bad_input_is_one_error_line(args, message):
    result = runner.invoke(app, ["summary", *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr


def _results_table_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "results_table.py"
    spec = importlib.util.spec_from_file_location("results_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_table(tmp_path, capsys):
    table = _results_table_module()
    numbnn.io.save(build_model("cli-summary-tiny", width=16), tmp_path / "wide.h5")
    runs = tmp_path / "runs"
    runs.mkdir()
    command = "numbnn train --model cli-summary-tiny --json"
    base = {"model": "cli-summary-tiny", "command": command}
    (runs / "a.json").write_text(json.dumps({**base, "test_accuracy": 0.9123, "epochs": 3, "seconds": 150.0,
                                             "checkpoint": str(tmp_path / "wide.h5")}))
    (runs / "b.json").write_text(json.dumps({**base, "test_accuracy": 0.5, "epochs": 1, "minutes": 0.25,
                                             "checkpoint": str(tmp_path / "gone.h5")}))
    assert table.main([str(runs), "--out", str(tmp_path / "table.md")]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "table.md").read_text() == out
    rows = [line for line in out.splitlines() if line.startswith("| cli-summary-tiny")]
    # a.json: the checkpoint's width-16 model (14*14*9*4*16 = 113k BOPs); b.json: default width 8 (56.4k), daggered
    assert rows[0].split(" | ")[1:4] == ["91.23%", "3", "2.5"] and "| 113k |" in rows[0]
    assert rows[1].startswith("| cli-summary-tiny \u2020 | 50.00% | 1 | 0.2") and "| 56.4k |" in rows[1]
    assert "| ReActXGB (paper) | 90.38% |" in out and "| CBCNN (paper) | 92.86% |" in out

    (runs / "c.json").write_text(json.dumps({"model": "cli-summary-tiny"}))
    assert table.main([str(runs)]) == 2
    assert "c.json: missing test_accuracy, epochs, command" in capsys.readouterr().err
    assert table.main([str(tmp_path / "nothing")]) == 2


def test_results_table_reads_a_sweep_directory(tmp_path, capsys):
    import numbnn.io

    table = _results_table_module()
    sweep = tmp_path / "sweep"
    (sweep / "k1").mkdir(parents=True)
    (sweep / "k2").mkdir()
    numbnn.io.save(build_model("cli-summary-tiny", width=16), sweep / "k1" / "checkpoint.h5")
    (sweep / "sweep.json").write_text(json.dumps({"name": "s", "runs": [
        {"key": "k1", "label": "tiny wide"}, {"key": "k2", "label": "tiny failed"}]}))
    config = {"model": "cli-summary-tiny", "model_args": {"width": 16},
              "train": {**make_config("cli-summary-tiny").to_dict(), "epochs": 2}}
    (sweep / "k1" / "metrics.json").write_text(json.dumps({
        "label": "tiny wide", "config": config, "test_accuracy": 0.875, "fc_test_accuracy": 0.75,
        "epochs": 2, "seconds": 90.0, "checkpoint": "checkpoint.h5"}))
    assert table.main([str(sweep)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny")]
    # k2 has no metrics.json (a failed run): no row; k1's width-16 checkpoint gives 113k BOPs
    assert len(rows) == 1 and rows[0].startswith("| tiny wide | 87.50% (FC head 75.00%) | 2 | 1.5 |")
    assert "| 113k |" in rows[0]
    assert "`numbnn train --model cli-summary-tiny --epochs 2 --model-arg width=16 --threads 1`" in rows[0]
