"""`numbnn export / predict / eval (packed) / bench model` through CliRunner, and the input readers.

The PNG twin at the top writes PNG files with a chosen filter per row, so the decoder's unfiltering is
checked exactly; colour conversion is checked against Pillow where it is installed.
"""

import json
import struct
import zlib

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from numbnn.datasets.fashion import CLASSES
from numbnn.datasets.idx import write_idx
from numbnn.errors import CheckpointError, InputError
from numbnn.inference import cold_start
from numbnn.inference.images import decode_png, read_images
from numbnn.io import save as save_checkpoint
from numbnn.models import build_model

runner = CliRunner()

# ---- naive PNG writer ------------------------------------------------------------------------------------


def png_bytes(samples: np.ndarray, color: int, depth: int = 8, filters=(0,), palette=None) -> bytes:
    """PNG of ``samples`` [H, W, S] (integers of ``depth`` bits); row y uses filter filters[y % len]."""
    height, width, _ = samples.shape
    if depth == 16:
        raw = samples.astype(">u2").view(np.uint8).reshape(height, -1)
    elif depth == 8:
        raw = samples.astype(np.uint8).reshape(height, -1)
    else:
        bits = ((samples[..., 0, None] >> np.arange(depth - 1, -1, -1)) & 1).reshape(height, -1).astype(np.uint8)
        raw = np.packbits(bits, axis=1)
    bpp = max(1, samples.shape[2] * depth // 8)
    lines, previous = [], np.zeros(raw.shape[1], np.int64)
    for y, row in enumerate(raw.astype(np.int64)):
        kind = filters[y % len(filters)]
        left = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]])
        corner = np.concatenate([np.zeros(bpp, np.int64), previous[:-bpp]])
        if kind == 0:
            predictor = np.zeros_like(row)
        elif kind == 1:
            predictor = left
        elif kind == 2:
            predictor = previous
        elif kind == 3:
            predictor = (left + previous) // 2
        else:
            p = left + previous - corner
            pa, pb, pc = abs(p - left), abs(p - previous), abs(p - corner)
            predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, previous, corner))
        lines.append(bytes([kind]) + ((row - predictor) & 0xFF).astype(np.uint8).tobytes())
        previous = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    chunks = chunk(b"IHDR", header)
    if palette is not None:
        chunks += chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    return b"\x89PNG\r\n\x1a\n" + chunks + chunk(b"IDAT", zlib.compress(b"".join(lines))) + chunk(b"IEND", b"")


# ---- input readers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("filters", [(0,), (1,), (2,), (3,), (4,), (0, 1, 2, 3, 4)])
def test_png_filters_decode_exactly(filters):
    gray = np.random.default_rng(sum(filters)).integers(0, 256, (9, 28, 1))
    np.testing.assert_array_equal(decode_png(png_bytes(gray, 0, filters=filters)), gray[..., 0])


@pytest.mark.parametrize("depth", [1, 2, 4, 16])
def test_png_bit_depths_scale_to_8_bits(depth):
    values = np.random.default_rng(depth).integers(0, 2**depth, (5, 11, 1))
    expected = np.rint(values[..., 0] * 255 / (2**depth - 1)) if depth < 8 else values[..., 0] >> 8
    np.testing.assert_array_equal(decode_png(png_bytes(values, 0, depth, filters=(0, 4))), expected)


def test_png_colour_matches_pillow(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (6, 7, 3))
    (tmp_path / "rgb.png").write_bytes(png_bytes(rgb, 2, filters=(1, 4)))
    reference = np.asarray(pil.open(tmp_path / "rgb.png").convert("L"), np.int64)
    assert np.abs(read_images(tmp_path / "rgb.png")[0].astype(np.int64) - reference).max() <= 1
    palette = rng.integers(0, 256, (4, 3))
    indices = rng.integers(0, 4, (6, 7, 1))
    (tmp_path / "palette.png").write_bytes(png_bytes(indices, 3, depth=2, palette=palette))
    reference = np.asarray(pil.open(tmp_path / "palette.png").convert("L"), np.int64)
    assert np.abs(read_images(tmp_path / "palette.png")[0].astype(np.int64) - reference).max() <= 1
    rgba = np.concatenate([rgb, rng.integers(0, 256, (6, 7, 1))], axis=2)
    expected = np.rint(rgb @ np.array([0.299, 0.587, 0.114]) * rgba[..., 3] / 255.0)  # over black
    assert np.abs(decode_png(png_bytes(rgba, 6)).astype(np.int64) - expected).max() <= 1


def test_damaged_png_is_an_input_error():
    data = bytearray(png_bytes(np.zeros((4, 4, 1)), 0))
    data[20] ^= 1  # inside IHDR: its CRC no longer matches
    with pytest.raises(InputError, match="corrupt PNG chunk"):
        decode_png(bytes(data), "x.png")
    with pytest.raises(InputError, match="IEND"):
        decode_png(png_bytes(np.zeros((4, 4, 1)), 0)[:-12], "x.png")  # the IEND chunk cut off


def test_array_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "batch.npy", images)
    np.save(tmp_path / "one.npy", images[0])
    write_idx(tmp_path / "images-idx3-ubyte.gz", images)
    np.testing.assert_array_equal(read_images(tmp_path / "batch.npy"), images)
    np.testing.assert_array_equal(read_images(tmp_path / "one.npy"), images[:1])
    np.testing.assert_array_equal(read_images(tmp_path / "images-idx3-ubyte.gz"), images)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="objects.npy"):
        read_images(tmp_path / "objects.npy")
    np.save(tmp_path / "ints.npy", images.astype(np.int32))
    with pytest.raises(InputError, match="expected uint8"):
        read_images(tmp_path / "ints.npy")


# ---- commands ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli")
    checkpoint = directory / "ckpt.h5"
    save_checkpoint(build_model("bnn-small", widths=(8, 8, 16)), checkpoint)
    images = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    np.save(directory / "five.npy", images)
    (directory / "one.png").write_bytes(png_bytes(images[0][..., None], 0, filters=(4,)))
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
    assert "cold" not in report
    # one entry per op kind of the compiled graph, each a positive time
    import numbnn.io
    from numbnn.inference import compile as compile_packed

    kinds = {op.name for op in compile_packed(numbnn.io.load(checkpoint)).program.ops}
    assert set(report["packed_op_ms"]) == kinds and all(ms > 0 for ms in report["packed_op_ms"].values())


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
