"""`numbnn export / predict / eval (packed) / bench model` through CliRunner, and the input readers.

The PNG writer at the top builds PNG files byte by byte (a chosen filter per row, any bit depth, a forged
header), so the reader is checked on files Pillow did not write.
"""

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from numbnn.bench import cold_start
from numbnn.cli.main import app
from numbnn.datasets.fashion import CLASSES
from numbnn.datasets.idx import write_idx
from numbnn.errors import CheckpointError, InputError
from numbnn.inference.images import MAX_PIXELS, read_images, read_picture
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
def test_gray_png_reads_exactly(tmp_path, filters):
    gray = np.random.default_rng(sum(filters)).integers(0, 256, (9, 28, 1))
    (tmp_path / "gray.png").write_bytes(png_bytes(gray, 0, filters=filters))
    np.testing.assert_array_equal(read_images(tmp_path / "gray.png"), gray[None, ..., 0])


@pytest.mark.parametrize("depth", [1, 2, 4, 16])
def test_png_bit_depths_scale_to_8_bits(tmp_path, depth):
    values = np.random.default_rng(depth).integers(0, 2**depth, (5, 11, 1))
    expected = np.rint(values[..., 0] * 255 / (2**depth - 1)) if depth < 8 else values[..., 0] >> 8
    (tmp_path / "deep.png").write_bytes(png_bytes(values, 0, depth, filters=(0, 4)))
    np.testing.assert_array_equal(read_picture(tmp_path / "deep.png"), expected)


def test_colour_is_luma_and_alpha_is_composited_over_black(tmp_path):
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (6, 7, 3))
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    (tmp_path / "rgb.png").write_bytes(png_bytes(rgb, 2, filters=(1, 4)))
    assert np.abs(read_picture(tmp_path / "rgb.png") - luma).max() <= 1
    palette = rng.integers(0, 256, (4, 3))
    indices = rng.integers(0, 4, (6, 7, 1))
    (tmp_path / "palette.png").write_bytes(png_bytes(indices, 3, depth=2, palette=palette))
    assert np.abs(read_picture(tmp_path / "palette.png") - (palette @ [0.299, 0.587, 0.114])[indices[..., 0]]).max() <= 1
    rgba = np.concatenate([rgb, rng.integers(0, 256, (6, 7, 1))], axis=2)
    (tmp_path / "rgba.png").write_bytes(png_bytes(rgba, 6))
    assert np.abs(read_picture(tmp_path / "rgba.png") - luma * rgba[..., 3] / 255.0).max() <= 1


def test_jpeg_reads_close_to_the_original(tmp_path):
    gray = np.zeros((28, 28), np.uint8)
    gray[6:22, 8:20] = 200  # a light garment on black
    Image.fromarray(gray).save(tmp_path / "shirt.jpg", quality=95)
    got = read_images(tmp_path / "shirt.jpg")
    assert got.shape == (1, 28, 28) and np.abs(got[0].astype(int) - gray).mean() < 3


def test_damaged_png_is_one_line_input_error(tmp_path):
    data = bytearray(png_bytes(np.zeros((4, 4, 1)), 0))
    data[20] ^= 1  # inside IHDR: its CRC no longer matches
    (tmp_path / "crc.png").write_bytes(bytes(data))
    noise = np.random.default_rng(0).integers(0, 256, (30, 30, 1))
    (tmp_path / "cut.png").write_bytes(png_bytes(noise, 0)[:400])  # image data cut off
    (tmp_path / "text.txt").write_text("not a picture")
    for name in ("crc.png", "cut.png", "text.txt"):
        with pytest.raises(InputError, match=name) as error:
            read_images(tmp_path / name)
        assert "\n" not in str(error.value)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose (valid) header claims width x height pixels over the data of one pixel."""
    one = png_bytes(np.zeros((1, 1, 1)), 0)
    header = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    ihdr = struct.pack(">I", 13) + header + struct.pack(">I", zlib.crc32(header))
    return one[:8] + ihdr + one[8 + len(ihdr):]


@pytest.mark.parametrize("side", [3000, 40000])  # above our limit; 40000 is above Pillow's own bomb limit too
def test_huge_picture_is_refused_before_decoding(tmp_path, monkeypatch, side):
    (tmp_path / "bomb.png").write_bytes(png_claiming(side, side))
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self))
    with pytest.raises(InputError, match="bomb.png") as error:
        read_images(tmp_path / "bomb.png")
    assert decoded == [] and "\n" not in str(error.value)
    if side == 3000:
        assert f"3000x3000 pixels is empty or too large (more than {MAX_PIXELS} pixels)" in str(error.value)


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
    assert "cold" not in report and report["cpu_model"]
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
