"""`numbnn export / predict / eval (packed) / bench model` through CliRunner, and the cold-start probe.

The input readers behind `predict` are tested in test_io_images.py.
"""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from numbnn.bench import cold_start
from numbnn.cli.main import app
from numbnn.datasets.fashion import CLASSES
from numbnn.errors import CheckpointError
from numbnn.io import save as save_checkpoint
from numbnn.models import build_model

runner = CliRunner()

# ---- commands ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli")
    checkpoint = directory / "ckpt.h5"
    save_checkpoint(build_model("bnn-small", widths=(8, 8, 16)), checkpoint)
    images = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    np.save(directory / "five.npy", images)
    Image.fromarray(images[0]).save(directory / "one.png")
    return directory, checkpoint


def last_json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_export_then_predict(files):
    directory, checkpoint = files
    model = directory / "model.h5"
    report = last_json(runner.invoke(app, ["export", str(checkpoint), "--out", str(model), "--json"]))
    assert report["file_bytes"] == model.stat().st_size and report["ops"]["bconv_steps"] == 2
    assert report["payload_bytes"] <= report["packed_size_bytes"] < report["checkpoint_bytes"]
    out = last_json(runner.invoke(app, ["predict", str(model), "--input", str(directory / "five.npy"), "--top", "3", "--json"]))
    assert [p["index"] for p in out["predictions"]] == list(range(5))
    for prediction in out["predictions"]:
        probabilities = [t["probability"] for t in prediction["top"]]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < probabilities[0] <= 1
        assert prediction["label"] == CLASSES[prediction["class"]] == prediction["top"][0]["label"]
    png = last_json(runner.invoke(app, ["predict", str(model), "--input", str(directory / "one.png"), "--json"]))
    assert png["predictions"][0]["class"] == out["predictions"][0]["class"]  # the same picture


def test_predict_errors_are_one_line(files):
    directory, checkpoint = files
    result = runner.invoke(app, ["predict", str(checkpoint), "--input", str(directory / "five.npy")])
    assert result.exit_code == 2 and result.output.count("error:") == 1 and "numbnn-packed-model" in result.output
    result = runner.invoke(app, ["predict", str(checkpoint), "--input", str(directory / "missing.png")])
    assert result.exit_code == 2 and "error:" in result.output


def test_eval_packed_equals_eval_of_the_float_model(files):
    directory, checkpoint = files
    model = directory / "eval.h5"
    runner.invoke(app, ["export", str(checkpoint), "--out", str(model)])
    float_result = last_json(runner.invoke(app, ["eval", str(checkpoint), "--limit", "60", "--json"]))
    from_file = last_json(runner.invoke(app, ["eval", str(model), "--limit", "60", "--json"]))
    compiled = last_json(runner.invoke(app, ["eval", str(checkpoint), "--packed", "--limit", "60", "--json"]))
    assert from_file == compiled
    assert from_file["correct"] == float_result["correct"] and from_file["n"] == 60
    assert from_file["loss"] == pytest.approx(float_result["loss"], rel=1e-6)


def test_bench_model_quick(files):
    _, checkpoint = files
    report = last_json(runner.invoke(app, ["bench", "model", str(checkpoint), "--quick", "--repeats", "1", "--json"]))
    for side in ("packed", "float"):
        assert set(report[side]) == {"batch_1", "batch_8"}
        for batch, row in ((1, report[side]["batch_1"]), (8, report[side]["batch_8"])):
            assert row["latency_ms"] > 0  # images/s is the batch over the same median time
            assert row["images_per_s"] == pytest.approx(batch * 1e3 / row["latency_ms"], rel=0.01, abs=0.1)
    float_ms, packed_ms = report["float"]["batch_8"]["latency_ms"], report["packed"]["batch_8"]["latency_ms"]
    assert report["speedup"]["batch_8"] == pytest.approx(float_ms / packed_ms, rel=0.02, abs=0.01)
    assert "cold" not in report and report["cpu_model"]
    # one entry per op kind of the compiled graph, each a positive time
    import numbnn.io
    from numbnn.inference import compile as compile_packed

    packed = compile_packed(numbnn.io.load(checkpoint))
    kinds = {op.name for op in packed.program.ops}
    assert set(report["packed_op_ms"]) == kinds and all(ms > 0 for ms in report["packed_op_ms"].values())
    # one row per binary node, its MACs counted from the weights and the output map it writes
    binary = report["binary_layers"]
    nodes = [i for i, node in enumerate(packed.graph.nodes) if node.op in ("bconv", "bconv_steps", "bdense")]
    assert binary["batch"] == 8 and [layer["node"] for layer in binary["layers"]] == nodes and nodes
    for layer in binary["layers"]:
        node = packed.graph.nodes[layer["node"]]
        out_shape = packed.program.specs[node.output].shape
        weight = node.consts["weight"]
        per_output = weight.shape[1] * weight.shape[2] * node.attrs["in_channels"] // node.attrs.get("groups", 1) \
            if weight.ndim == 4 else node.attrs["in_features"]
        assert layer["binary_macs"] == 8 * int(np.prod(out_shape)) * per_output
        assert layer["graph_ms"] > 0 and layer["kernel_ms"] > 0
    assert binary["total"]["binary_macs"] == sum(layer["binary_macs"] for layer in binary["layers"])


def test_cold_start_probe_reports_its_phases(files, tmp_path):
    directory, checkpoint = files
    runner.invoke(app, ["export", str(checkpoint), "--out", str(tmp_path / "m.h5")])
    timings = cold_start.main("packed", str(tmp_path / "m.h5"))
    assert set(timings) == {"import_s", "load_s", "first_call_s", "total_in_process_s"}
    assert all(value >= 0 for value in timings.values())
    phases = timings["import_s"] + timings["load_s"] + timings["first_call_s"]
    assert timings["total_in_process_s"] == pytest.approx(phases, abs=0.0025)  # three phases, each rounded
    assert timings["load_s"] > 0  # reading and checking an HDF5 file is not free: the load was timed
    with pytest.raises(CheckpointError):
        cold_start.main("packed", str(tmp_path / "missing.h5"))
    with pytest.raises(SystemExit, match="unknown kind"):
        cold_start.main("fp16", str(tmp_path / "m.h5"))
