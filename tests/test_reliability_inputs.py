"""Hostile inputs that used to cost a traceback or runaway work: each is now one ``error:`` line, exit 2.

Files crafted with a valid numbnn checksum (so validation, not the checksum, must catch them): RNG
states, positions, history and optimizer state of training checkpoints; NaN/inf weights; a conv
padding that validated but failed at predict. Inputs whose header lies about their size (.npy, PNG),
an .npz named .npy, a damaged sweep record. Then fixed-seed structural fuzzing of both loaders.
"""

import copy
import io
import json
import random
import struct
import time
import zlib

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import numbnn.io
from numbnn.cli.main import app
from numbnn.errors import CheckpointError, InputError, NumbnnError
from numbnn.inference import compile
from numbnn.inference import format as packed_format
from numbnn.inference import model as packed_model
from numbnn.io.images import read_images
from numbnn.io.nested import write_nested
from numbnn.train import run as training
from cli_checks import assert_error_line


def assert_error_line_among(result, *fragments):
    """One ``error:`` line among the command's other stderr output."""
    assert_error_line(result, *fragments, alone=False)

runner = CliRunner()
IMAGES = np.random.default_rng(0).integers(0, 256, (2, 28, 28), dtype=np.uint8)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A real one-epoch training checkpoint, its packed model, and their parsed contents."""
    d = tmp_path_factory.mktemp("inputs")
    checkpoint = d / "run.h5"
    training.train("bnn-small", options={"epochs": 1, "limit": 64, "test_limit": 20, "batch_size": 32},
                   model_args={"widths": [4, 4, 8]}, out=checkpoint, progress=False)
    packed = compile(numbnn.io.load(checkpoint)).save(d / "packed.h5")
    with h5py.File(packed) as file:
        graph = json.loads(file["graph"].asstr()[()])
        meta = json.loads(file.attrs["meta"])
        blobs = {name: dataset[()] for name, dataset in file["constants"].items()}
    return d, checkpoint, packed, numbnn.io.load_checkpoint(checkpoint), (meta, graph, blobs)


def parts_of(checkpoint: numbnn.io.Checkpoint) -> dict:
    return {"config": copy.deepcopy(checkpoint.config), "state": {k: v.copy() for k, v in checkpoint.state.items()},
            "optimizer": copy.deepcopy(checkpoint.optimizer_state), "scheduler": copy.deepcopy(checkpoint.scheduler_state),
            "rng": copy.deepcopy(checkpoint.rng_state), "epoch": checkpoint.epoch,
            "history": copy.deepcopy(checkpoint.history), "extra": copy.deepcopy(checkpoint.extra)}


def write_checkpoint(path, parts: dict):
    """A checkpoint with exactly these parts, in a valid envelope (what a crafted file looks like)."""
    with numbnn.io.atomic_h5(path) as file:
        numbnn.io.write_header(file, numbnn.io.FORMAT, numbnn.io.FORMAT_VERSION)
        file.attrs["config"] = json.dumps(parts["config"])
        if parts["epoch"] is not None:
            file.attrs["epoch"] = parts["epoch"]
        write_nested(file.create_group("state"), parts["state"], "state")
        for name in ("optimizer", "scheduler", "rng"):
            if parts[name] is not None:
                write_nested(file.create_group(name), parts[name], name)
        for name in ("history", "extra"):
            text = json.dumps(parts[name], default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
            file.create_dataset(name, data=text, dtype=h5py.string_dtype())
    return path


def write_packed(path, meta, graph, blobs):
    with numbnn.io.atomic_h5(path) as file:
        numbnn.io.write_header(file, packed_format.FORMAT, packed_format.FORMAT_VERSION)
        file.attrs["meta"] = json.dumps(meta)
        file.create_dataset("graph", data=json.dumps(graph), dtype=h5py.string_dtype())
        group = file.create_group("constants")
        for name, data in blobs.items():
            group.create_dataset(name, data=data)
    return path


# -- crafted training checkpoints -------------------------------------------------------------------------------


def _set(parts, path, value):
    target = parts
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


CRAFTED = {
    "rng: unknown generator": (("rng", "bit_generator"), "NoSuchGenerator", "invalid RNG state"),
    "rng: state is text": (("rng", "state"), "abc", "invalid RNG state"),
    "rng: inner state is text": (("rng", "state", "state"), "abc", "invalid RNG state"),
    "rng: another generator": (("rng",), np.random.MT19937(1).state, "expected PCG64"),
    "step: text": (("extra", "step"), "abc", "invalid step"),
    "step: fraction": (("extra", "step"), 1.5, "invalid step"),
    "step: negative": (("extra", "step"), -3, "invalid step"),
    "partial: text": (("extra", "partial_epoch", "seen"), "x", "invalid partial_epoch seen"),
    "partial: nan": (("extra", "partial_epoch", "loss_sum"), float("nan"), "invalid partial_epoch loss_sum"),
    "history: text seconds": (("history", 0, "seconds"), "x", "history record 0"),
    "history: empty record": (("history", 0), {}, "history record 0"),
    "epoch: beyond history": (("epoch",), 5, "does not match"),
    "teacher: a number": (("extra", "train_config", "teacher"), 3.5, "teacher must be a checkpoint path"),
    "schedule: text step": (("scheduler", "step"), "x", "resume: invalid optimizer or schedule state"),
    "schedule: inf step": (("scheduler", "step"), float("inf"), "resume"),
    "optimizer: entry of the wrong type": (("optimizer", "state", "0"), np.zeros(0, np.float32), "resume"),
    "optimizer: entries differ": (("optimizer", "state", "1"), {"a": 1}, "resume"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_resuming_a_crafted_checkpoint_is_one_error_line(base, tmp_path, case):
    _, _, _, checkpoint, _ = base
    path, value, fragment = CRAFTED[case]
    parts = parts_of(checkpoint)
    _set(parts, path, value)
    crafted = write_checkpoint(tmp_path / "crafted.h5", parts)
    assert_error_line_among(invoke("train", "--resume", crafted, "--epochs", 2), fragment)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_checkpoints_with_non_finite_weights_are_refused_at_load(base, tmp_path, bad):
    _, _, _, checkpoint, _ = base
    parts = parts_of(checkpoint)
    name = next(k for k, v in parts["state"].items() if v.dtype.kind == "f" and v.size)
    parts["state"][name].flat[0] = bad
    crafted = write_checkpoint(tmp_path / "nan.h5", parts)
    with pytest.raises(CheckpointError, match=f"{name}.*NaN or inf"):
        numbnn.io.load_checkpoint(crafted)
    for command in (["eval", crafted, "--limit", 10], ["export", crafted, "--out", tmp_path / "p.h5"],
                    ["summary", crafted], ["train", "--resume", crafted, "--epochs", 2]):
        assert_error_line_among(invoke(*command), "NaN or inf")
    assert not (tmp_path / "p.h5").exists()


def test_packed_models_with_non_finite_constants_are_refused_at_load(base, tmp_path):
    d, _, _, _, (meta, graph, blobs) = base
    blobs = {**blobs, "float32": blobs["float32"].copy()}
    blobs["float32"][len(blobs["float32"]) // 2] = np.nan
    crafted = write_packed(tmp_path / "nan.h5", meta, graph, blobs)
    assert_error_line_among(invoke("predict", crafted, "--input", save_npy(tmp_path, IMAGES)), "NaN or inf")


def save_npy(directory, array, name="images.npy"):
    np.save(directory / name, array)
    return directory / name


def test_a_conv_padding_that_validated_but_failed_at_predict_is_refused_at_load(base, tmp_path):
    _, _, _, _, (meta, graph, blobs) = base
    graph = copy.deepcopy(graph)
    conv = next(node for node in graph["nodes"] if node["op"] == "conv2d")
    conv["attrs"]["padding"] = [10**6, 10**6]
    crafted = write_packed(tmp_path / "padding.h5", meta, graph, blobs)
    images = save_npy(tmp_path, IMAGES)
    started = time.perf_counter()
    assert_error_line_among(invoke("predict", crafted, "--input", images), "exceeds", "elements")
    assert_error_line_among(invoke("eval", crafted, "--limit", 10), "exceeds")
    assert time.perf_counter() - started < 10


def test_a_packed_model_failing_inside_an_op_is_a_checkpoint_error(base, monkeypatch):
    """The last line of defence: whatever a validated graph still trips on is reported, not a traceback."""
    _, _, packed, _, _ = base
    model = packed_model.load(packed)
    op = model.program.steps[0][0]
    monkeypatch.setattr(type(op), "__call__", lambda self, *a: (_ for _ in ()).throw(IndexError("index 7")))
    with pytest.raises(CheckpointError, match="fails at predict.*IndexError"):
        model.predict(IMAGES)


# -- input files whose header lies ------------------------------------------------------------------------------


def test_an_npz_named_npy_is_one_error_line(base, tmp_path):
    _, _, packed, _, _ = base
    buffer = io.BytesIO()
    np.savez(buffer, images=IMAGES)
    (tmp_path / "images.npy").write_bytes(buffer.getvalue())
    assert_error_line_among(invoke("predict", packed, "--input", tmp_path / "images.npy"), "zip archive", ".npz")


@pytest.mark.parametrize("shape", [(10**11, 28, 28), (2**40,), (3, 28, 28)])
def test_an_npy_header_declaring_more_than_the_file_holds_is_refused_before_allocating(base, tmp_path, shape):
    _, _, packed, _, _ = base
    header = {"descr": "|u1", "fortran_order": False, "shape": shape}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    path = tmp_path / "lying.npy"
    path.write_bytes(buffer.getvalue() + bytes(1700))
    started = time.perf_counter()
    assert_error_line_among(invoke("predict", packed, "--input", path), "declares", "holds 1,700 bytes")
    assert time.perf_counter() - started < 5


def huge_png(width=2048, height=2048) -> bytes:
    """A ~30 KB PNG declaring 16-bit RGBA of width x height (all zero rows compress to almost nothing)."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = zlib.compress(bytes(height * (width * 8 + 1)), 9)
    header = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_a_png_declaring_huge_dimensions_is_rejected_before_decoding(base, tmp_path):
    _, _, packed, _, _ = base
    path = tmp_path / "huge.png"
    path.write_bytes(huge_png())
    assert path.stat().st_size < 100_000
    started = time.perf_counter()
    assert_error_line_among(invoke("predict", packed, "--input", path), "2048x2048", "too large")
    with pytest.raises(InputError, match="too large"):
        read_images(path)  # the absolute limit, from the header
    assert time.perf_counter() - started < 2  # decoding would take seconds and hundreds of MiB
    path.write_bytes(huge_png(1000, 1000))  # within the absolute limit, but not what the model takes
    started = time.perf_counter()
    assert_error_line_among(invoke("predict", packed, "--input", path), "1000x1000", "the model takes images of 28x28")
    assert time.perf_counter() - started < 2


# -- a damaged sweep directory ------------------------------------------------------------------------------------


def test_a_truncated_or_malformed_metrics_json_is_one_error_line(tmp_path):
    from numbnn.sweep import parse_spec, store

    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text('[defaults]\nmodel = "bnn-small"\nepochs = 1\n[grid]\nseed = [0]\n')
    key = parse_spec({"defaults": {"model": "bnn-small", "epochs": 1}, "grid": {"seed": [0]}}).runs[0].key
    out = tmp_path / "out"
    (out / key).mkdir(parents=True)
    record = {"format": store.RECORD_FORMAT, "version": 1, "status": "finished", "key": key, "label": "x",
              "config": {"model": "bnn-small"}, "test_accuracy": 0.5, "epochs": 1, "seconds": 1.0,
              "cost": {"params": 1, "size_bytes": 1, "ops": 1, "ace": 1}, "history": []}
    text = json.dumps(record)
    for damaged, fragment in ((text[: len(text) // 2], "unreadable"), (json.dumps({**record, "label": None}), "label"),
                              (json.dumps({**record, "cost": {}}), "cost.params"), ("", "unreadable")):
        (out / key / store.METRICS_FILE).write_text(damaged)
        for command in (["report", out, "--no-plots"], ["sweep", spec_path, "--out", out, "--dry-run"],
                        ["sweep", spec_path, "--out", out, "--workers", 1]):
            assert_error_line_among(invoke(*command), "metrics.json", fragment)


# -- fixed-seed fuzzing of both loaders -----------------------------------------------------------------------------

WEIRD = [None, True, -1, 0, 1, 3, 2**40, -2**70, 1.5, float("nan"), float("inf"), "x", "", "same", [], [1], [0, 0],
         [3, 3], [10**6, 10**6], [-1, 2], [1, 2, 3], {}, {"batch": 1}, "float32", "uint64"]


def _mutate_graph(graph: dict, rng: random.Random) -> dict:
    graph = copy.deepcopy(graph)
    node = rng.choice(graph["nodes"])
    target, key = rng.choice([(node, "inputs"), (node, "output"), (graph["input_spec"], "shape")]
                             + [(node["attrs"], k) for k in node["attrs"]] * 3
                             + [(ref, k) for ref in node["consts"].values() for k in ref])
    target[key] = copy.deepcopy(rng.choice(WEIRD))
    return graph


def test_fuzzed_packed_model_graphs_load_and_predict_or_raise_a_numbnn_error(base, tmp_path):
    _, _, _, _, (meta, graph, blobs) = base
    rng = random.Random(18)
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(200):
        path = write_packed(tmp_path / "fuzzed.h5", meta, _mutate_graph(graph, rng), blobs)
        try:
            packed_model.load(path).predict_proba(IMAGES)
            outcomes["loaded"] += 1
        except NumbnnError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100 and sum(outcomes.values()) == 200  # mostly refused, never anything else


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list) and 0 < len(value) < 5:
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    if path:
        yield path


def test_fuzzed_training_checkpoints_resume_evaluate_or_give_one_error_line(base, tmp_path):
    _, _, _, checkpoint, _ = base
    rng = random.Random(18)
    original = parts_of(checkpoint)
    candidates = [(section, *path) for section in ("rng", "extra", "history", "scheduler", "optimizer")
                  for path in _leaves(original[section])]
    exits = {0: 0, 2: 0}
    for _ in range(25):
        parts = parts_of(checkpoint)
        _set(parts, rng.choice(candidates), copy.deepcopy(rng.choice(WEIRD)))
        path = write_checkpoint(tmp_path / "fuzzed.h5", parts)
        for command in (["train", "--resume", path, "--epochs", 2], ["eval", path, "--limit", 10]):
            result = invoke(*command)
            assert result.exception is None or isinstance(result.exception, SystemExit), (command, repr(result.exception))
            assert result.exit_code in exits, result.output
            exits[result.exit_code] += 1
            if result.exit_code == 2:
                assert_error_line_among(result)
    assert exits[2] > 0
