"""Hostile files through every command that reads one, and through the library's loaders.

Each command that opens a file (``eval``, ``export``, ``predict`` (model and ``--input``), ``summary CKPT``,
``train --resume``, ``train --teacher``, ``bench model``) is fed each kind of bad file: zero bytes, a
truncated numbnn file, random bytes, an HDF5 file written by another program, the other numbnn file kind
(a checkpoint where a packed model is expected and vice versa), a future format version, a missing path
and a directory. Every combination must end in exactly one ``error:`` line on stderr and exit code 2:
never a traceback, never a hang. The loaders behind the commands must raise the specific
:mod:`numbnn.errors` class. Crafted files with a valid envelope (missing datasets, wrong shapes/dtypes,
hostile graphs) and byte-level fuzzing of checkpoints are in tests/test_io_checkpoint.py and
tests/test_inference_format.py; here: byte-level fuzzing of packed models and of the ``eval`` dispatch.
"""

import contextlib
import faulthandler
import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import numbnn.io
from numbnn.cli.main import app
from numbnn.errors import CheckpointError, FormatVersionError, InputError
from numbnn.inference import compile
from numbnn.inference import format as packed_format
from numbnn.inference import model as packed_model
from numbnn.io import atomic_h5, write_header
from numbnn.io.images import read_images
from numbnn.models import build_model
from numbnn.train.checkpoint import read_training_state
from cli_checks import assert_error_line as assert_one_error_line

runner = CliRunner()
HANG_LIMIT_S = 120  # generous: the machine may be busy; a healthy case takes well under a second


@contextlib.contextmanager
def no_hang(seconds=HANG_LIMIT_S):
    """Abort the whole test process with every thread's stack if the block runs longer than ``seconds``.

    A hang inside HDF5's C code cannot be interrupted from Python, so a watchdog thread dumps the
    stacks and exits: the run fails loudly and boundedly instead of blocking CI.
    """
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def invoke(*args):
    with no_hang():
        return runner.invoke(app, [str(a) for a in args])


def png_bytes(pixels: np.ndarray) -> bytes:
    """A minimal 8-bit grayscale PNG (filter 0 on every row)."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    height, width = pixels.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels.astype(np.uint8))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A valid checkpoint, packed model and image batch, and one hostile file of every kind."""
    d = tmp_path_factory.mktemp("hostile")
    checkpoint = numbnn.io.save(build_model("bnn-small", widths=(8, 8, 16)), d / "checkpoint.h5")
    packed = compile(numbnn.io.load(checkpoint)).save(d / "packed.h5")
    images = d / "images.npy"
    np.save(images, np.random.default_rng(0).integers(0, 256, (2, 28, 28), dtype=np.uint8))

    (d / "empty.h5").write_bytes(b"")
    (d / "truncated-checkpoint.h5").write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    (d / "truncated-packed.h5").write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    (d / "random.h5").write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with h5py.File(d / "foreign.h5", "w") as file:  # what another program's HDF5 file looks like
        file["data"] = np.arange(100.0)
        file.attrs["format"] = "numbnn-checkpoint"  # even claiming to be ours does not make it so
    for kind, name in (("checkpoint", numbnn.io.FORMAT), ("packed", packed_format.FORMAT)):
        with atomic_h5(d / f"future-{kind}.h5") as file:
            write_header(file, name, 99)
            file.create_group("state")
    (d / "directory.h5").mkdir()
    return SimpleNamespace(dir=d, checkpoint=checkpoint, packed=packed, images=images)


# What each command reads, and how to put a file in that place.
COMMANDS = {
    "eval": ("either", lambda f, x: ["eval", f, "--limit", 10]),
    "export": ("checkpoint", lambda f, x: ["export", f, "--out", x.dir / "exported.h5"]),
    "predict": ("packed", lambda f, x: ["predict", f, "--input", x.images]),
    "predict --input": ("images", lambda f, x: ["predict", x.packed, "--input", f]),
    "summary": ("checkpoint", lambda f, x: ["summary", f]),
    "train --resume": ("checkpoint", lambda f, x: ["train", "--resume", f]),
    "train --teacher": ("checkpoint", lambda f, x: ["train", "--model", "bnn-small", "--limit", 32, "--test-limit", 10,
                                                     "--epochs", 1, "--teacher", f, "--out", x.dir / "student.h5"]),
    "bench model": ("checkpoint", lambda f, x: ["bench", "model", f, "--quick", "--no-cold"]),
}
KINDS = ("empty", "truncated", "random", "foreign-hdf5", "other-numbnn-kind", "future-version", "missing", "directory")


def hostile_path(kind: str, expects: str, x) -> Path | None:
    """The file of ``kind`` for a reader of ``expects``; None where the combination is not hostile."""
    packed_side = expects == "packed"
    if kind == "truncated":
        return x.dir / ("truncated-packed.h5" if packed_side else "truncated-checkpoint.h5")
    if kind == "other-numbnn-kind":
        if expects == "either":
            return None  # eval reads both kinds
        return x.checkpoint if expects in ("packed", "images") else x.packed
    if kind == "future-version":
        if expects == "images":
            return None  # an image has no numbnn format version
        return x.dir / ("future-packed.h5" if packed_side else "future-checkpoint.h5")
    return x.dir / {"empty": "empty.h5", "random": "random.h5", "foreign-hdf5": "foreign.h5",
                    "missing": "missing.h5", "directory": "directory.h5"}[kind]


CASES = [(command, kind) for command in COMMANDS for kind in KINDS
         if not (COMMANDS[command][0] == "either" and kind == "other-numbnn-kind")
         and not (COMMANDS[command][0] == "images" and kind == "future-version")]


@pytest.mark.parametrize("command, kind", CASES, ids=[f"{c}-{k}" for c, k in CASES])
def test_every_reading_command_answers_a_hostile_file_with_one_error_line(files, command, kind):
    expects, arguments = COMMANDS[command]
    path = hostile_path(kind, expects, files)
    result = invoke(*arguments(path, files))
    assert_one_error_line(result, path.name)
    if kind == "future-version":
        assert "newer" in result.stderr and "upgrade numbnn" in result.stderr


def test_eval_of_a_future_packed_model_says_upgrade(files):
    assert_one_error_line(invoke("eval", files.dir / "future-packed.h5"), "future-packed.h5", "upgrade numbnn")


# -- predict --input: images that are not what they claim ------------------------------------------------------


GOOD = np.random.default_rng(2).integers(0, 256, (2, 28, 28), dtype=np.uint8)


def _idx(code_and_rank: bytes, payload: bytes) -> bytes:
    return b"\x00\x00" + code_and_rank + struct.pack(">III", 2, 28, 28) + payload


def _with(value, where):
    array = (GOOD[..., None] / 255.0).astype(np.float32)
    array[where] = value
    return array


def _npy_bytes(array: np.ndarray, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


# name -> (file content, a fragment the error line must contain)
BAD_INPUTS = {
    "bad-magic-idx3-ubyte": (_idx(b"\x07\x03", GOOD.tobytes()), "bad-magic"),
    "wrong-dims-idx3-ubyte": (_idx(b"\x08\x05", GOOD.tobytes()), "wrong-dims"),
    "short-idx3-ubyte": (_idx(b"\x08\x03", GOOD.tobytes()[:1000]), "short"),
    "small-images-idx3-ubyte": (b"\x00\x00\x08\x03" + struct.pack(">III", 2, 20, 20) + GOOD[:, :20, :20].tobytes(),
                                "images"),
    "wrong-shape.npy": (_npy_bytes(GOOD[:, :20, :]), "images"),
    "wrong-dtype.npy": (_npy_bytes(GOOD.astype(np.int64)), "wrong-dtype.npy"),
    "wrong-rank.npy": (_npy_bytes(np.zeros((2, 2, 28, 28, 1), np.float32)), "wrong-rank.npy"),
    "bool.npy": (_npy_bytes(GOOD > 128), "bool.npy"),
    "nan.npy": (_npy_bytes(_with(np.nan, (1, 3, 4, 0))), "NaN"),
    "inf.npy": (_npy_bytes(_with(-np.inf, (0, 0, 0, 0))), "inf"),
    "truncated.npy": (_npy_bytes(GOOD)[:200], "truncated.npy"),
    "pickled.npy": (_npy_bytes(np.array([{"a": 1}], dtype=object), allow_pickle=True), "pickled.npy"),
    "bad-crc.png": (png_bytes(GOOD[0])[:20] + bytes([png_bytes(GOOD[0])[20] ^ 1]) + png_bytes(GOOD[0])[21:],
                    "bad-crc.png"),
    "truncated.png": (png_bytes(GOOD[0])[:300], "truncated.png"),
    "garbage-after-signature.png": (png_bytes(GOOD[0])[:8] + b"\xff" * 64, "garbage-after-signature.png"),
    "zero-pixels.png": (png_bytes(np.zeros((0, 0), np.uint8)), "zero-pixels.png"),
    "wrong-size.png": (png_bytes(GOOD[0, :20, :20]), "images"),
}


@pytest.fixture(scope="module")
def bad_inputs(files):
    paths = {}
    for name, (content, _) in BAD_INPUTS.items():
        paths[name] = files.dir / name
        paths[name].write_bytes(content)
    return paths


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_predict_answers_a_bad_input_file_with_one_error_line(files, bad_inputs, name):
    path, fragment = bad_inputs[name], BAD_INPUTS[name][1]
    assert_one_error_line(invoke("predict", files.packed, "--input", path), fragment)


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_files_raise_input_error_from_the_library(files, bad_inputs, name):
    path = bad_inputs[name]
    model = packed_model.load(files.packed)
    with pytest.raises(InputError):
        model.predict(read_images(path))


# -- library level: the loaders raise the specific class ---------------------------------------------------------

LOADERS = {
    "numbnn.io.load": ("checkpoint", numbnn.io.load),
    "numbnn.io.load_checkpoint": ("checkpoint", numbnn.io.load_checkpoint),
    "read_training_state": ("checkpoint", read_training_state),
    "numbnn.inference.load": ("packed", packed_model.load),
}


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("kind", KINDS)
def test_loaders_raise_the_specific_error_class(files, loader, kind):
    expects, load = LOADERS[loader]
    path = hostile_path(kind, expects, files)
    expected = FormatVersionError if kind == "future-version" else CheckpointError
    with no_hang(), pytest.raises(expected) as caught:
        load(path)
    if expected is CheckpointError:
        assert not isinstance(caught.value, FormatVersionError)
    assert path.name in str(caught.value)


@pytest.mark.parametrize("kind", ["empty", "random", "foreign-hdf5", "missing", "directory", "truncated"])
def test_read_images_raises_input_error_for_non_images(files, kind):
    path = hostile_path(kind, "images", files)
    with pytest.raises(InputError, match=path.name):
        read_images(path)


# -- fuzz: mutated packed models and the eval dispatch ------------------------------------------------------------


def _mutate(data: bytes, mutation: str, position: float, value: int, count: int) -> bytes:
    data = bytearray(data)
    at = int(position * len(data))
    if mutation == "flip":
        data[at] ^= value
    elif mutation == "truncate":
        del data[at:]
    else:
        data[at:at + count] = bytes([value]) * len(data[at:at + count])
    return bytes(data)


@settings(max_examples=25)
@given(
    mutation=st.sampled_from(["flip", "truncate", "scribble"]),
    position=st.floats(0, 1, exclude_max=True),
    value=st.integers(1, 255),
    count=st.integers(2, 16),
)
def test_fuzzed_packed_models_load_correctly_or_raise_checkpoint_error(files, mutation, position, value, count):
    good = files.packed.read_bytes()
    path = files.dir / "fuzzed.h5"
    path.write_bytes(_mutate(good, mutation, position, value, count))
    x = np.random.default_rng(3).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    with no_hang():
        packed_format.is_packed_model(path)  # the eval dispatch: a bool, never an exception or a hang
        try:
            model = packed_model.load(path)
        except CheckpointError:
            return
    np.testing.assert_array_equal(model.predict(x), packed_model.load(files.packed).predict(x))


def _shrink_graph_heap_object(data: bytes) -> bytes:
    """The packed model with the stored length of the graph JSON's global-heap object 8 bytes short
    (the 8-byte little-endian length sits just before the text)."""
    at = data.find(b'{"input": ') - 8
    assert at > 0
    (length,) = struct.unpack("<Q", data[at:at + 8])
    return data[:at] + struct.pack("<Q", length - 8) + data[at + 8:]


def test_eval_of_a_model_with_a_corrupt_heap_length_fails_fast_in_a_real_process(files, tmp_path):
    """Such a file made HDF5 loop forever while ``numbnn eval`` peeked at the file's format before
    verifying its checksum (run in a subprocess so that a hang is a timeout, not a stuck suite)."""
    path = tmp_path / "corrupt-heap.h5"
    path.write_bytes(_shrink_graph_heap_object(files.packed.read_bytes()))
    command = [sys.executable, "-c", "from numbnn.cli.main import run; run()", "eval", str(path), "--limit", "10"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=HANG_LIMIT_S,
                            env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {path}: corrupt file: checksum mismatch"]
