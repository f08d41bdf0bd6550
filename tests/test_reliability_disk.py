"""A full disk never leaves a file that loads with the wrong content, a temporary, or a crash.

Two ways to fill the disk: a small real tmpfs (where this process may mount one, e.g. as root in CI)
filled to several levels, and an injected ``write`` that raises ENOSPC after a chosen number of bytes
(always, so the guarantee is tested on every machine). Both run checkpoint saves and ``numbnn export``.
"""

import contextlib
import errno
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import numbnn._atomic as atomic
import numbnn.io
from numbnn.cli.main import app
from numbnn.errors import CheckpointError
from numbnn.inference import compile
from numbnn.inference import model as packed_model
from numbnn.models import build_model
from cli_checks import assert_error_line as assert_one_error_line

runner = CliRunner()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("disk")
    model = build_model("bnn-small", widths=(8, 8, 16))
    checkpoint = numbnn.io.save(model, d / "checkpoint.h5", rng=np.random.default_rng(1), epoch=1, history=[{}])
    packed = compile(numbnn.io.load(checkpoint))
    reference = packed_model.save(packed, d / "reference.h5").read_bytes()
    return d, model, checkpoint, packed, reference


def only_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- an injected write that fills up ------------------------------------------------------------------------


@contextlib.contextmanager
def disk_that_holds(monkeypatch, capacity: int, *, short: int | None = None):
    """Make every numbnn file write accept ``capacity`` bytes in total, then fail with ENOSPC.

    ``short``: accept at most this many bytes per call (partial writes, as a pipe or NFS may do).
    """
    left = [capacity]

    def write(fd, data):
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        count = min(len(data), left[0], short or len(data))
        left[0] -= count
        return os.write(fd, bytes(data[:count]))

    monkeypatch.setattr(atomic, "_os_write", write)
    yield


CAPACITIES = (0, 1, 511, 512, 513, 4096, 8192, "half", "size-1")


def _bytes(capacity, size):
    return {"half": size // 2, "size-1": size - 1}.get(capacity, capacity)


@pytest.mark.parametrize("capacity", CAPACITIES)
def test_checkpoint_save_into_a_full_disk_raises_and_keeps_the_old_file(sources, tmp_path, monkeypatch, capacity):
    _, model, checkpoint, _, _ = sources
    target = tmp_path / "ckpt.h5"
    target.write_bytes(checkpoint.read_bytes())
    before = target.read_bytes()
    with disk_that_holds(monkeypatch, _bytes(capacity, len(before))):
        with pytest.raises(CheckpointError, match=r"cannot write .*ckpt\.h5: No space left on device"):
            numbnn.io.save(model, target, rng=np.random.default_rng(2), epoch=2, history=[{}, {}])
    assert target.read_bytes() == before
    assert only_files(tmp_path) == ["ckpt.h5"]  # no temporary left behind


@pytest.mark.parametrize("capacity", CAPACITIES)
def test_export_into_a_full_disk_is_one_error_line_and_no_file(sources, tmp_path, monkeypatch, capacity):
    _, _, checkpoint, _, reference = sources
    out = tmp_path / "packed.h5"
    with disk_that_holds(monkeypatch, _bytes(capacity, len(reference))):
        result = runner.invoke(app, ["export", str(checkpoint), "--out", str(out)])
    assert_one_error_line(result, "cannot write", "No space left on device")
    assert "wrote" not in result.stdout
    assert only_files(tmp_path) == []


def test_short_writes_still_write_every_byte(sources, tmp_path, monkeypatch):
    _, _, _, packed, reference = sources
    with disk_that_holds(monkeypatch, 10**9, short=777):
        path = packed_model.save(packed, tmp_path / "packed.h5")
    assert len(path.read_bytes()) == len(reference)
    loaded = packed_model.load(path)
    x = np.random.default_rng(0).standard_normal((2, 28, 28, 1)).astype(np.float32)
    assert np.array_equal(loaded.predict_proba(x), packed.predict_proba(x))


def test_a_write_that_makes_no_progress_is_an_error_not_a_loop(sources, tmp_path, monkeypatch):
    _, model, _, _, _ = sources
    monkeypatch.setattr(atomic, "_os_write", lambda fd, data: 0)
    with pytest.raises(CheckpointError, match="accepted no more bytes"):
        numbnn.io.save(model, tmp_path / "ckpt.h5")
    assert only_files(tmp_path) == []


def test_bytes_that_read_back_differently_are_never_renamed_into_place(sources, tmp_path, monkeypatch):
    """A filesystem that acknowledges a write but stores other bytes (the zeroed weights libhdf5 wrote)."""
    _, model, _, _, _ = sources

    def lying_write(fd, data):
        data = bytearray(data)
        data[len(data) // 2] ^= 0xFF
        return os.write(fd, bytes(data))

    monkeypatch.setattr(atomic, "_os_write", lying_write)
    with pytest.raises(CheckpointError, match="differ from the bytes written"):
        numbnn.io.save(model, tmp_path / "ckpt.h5")
    assert only_files(tmp_path) == []


# -- a real small filesystem ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_fs():
    """A 256 KiB tmpfs, or None where this process may not mount one."""
    point = Path(tempfile.mkdtemp(prefix="numbnn-tmpfs-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(point)],
                             capture_output=True).returncode == 0 if os.geteuid() == 0 else False
    yield point if mounted else None
    if mounted:
        subprocess.run(["umount", str(point)], check=True)
    point.rmdir()


def fill(directory: Path, leave_free: int) -> None:
    """Fill the filesystem of ``directory`` until about ``leave_free`` bytes remain."""
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    with open(directory / "filler", "wb", buffering=0) as handle:
        with contextlib.suppress(OSError):
            handle.write(b"\1" * max(0, free - leave_free))


@pytest.mark.parametrize("leave_free", (0, 4096, 8192, 16384, 65536))
def test_real_full_filesystem_export_and_checkpoint(sources, small_fs, tmp_path, monkeypatch, leave_free):
    """Into a nearly full tmpfs (or, where mounting is not allowed, the injected ENOSPC write)."""
    _, model, checkpoint, _, reference = sources
    if small_fs is None:
        directory = tmp_path
        stack = disk_that_holds(monkeypatch, leave_free)
    else:
        directory = small_fs / f"free-{leave_free}"
        directory.mkdir()
        fill(directory, leave_free)
        stack = contextlib.nullcontext()
    out, ckpt = directory / "packed.h5", directory / "ckpt.h5"
    with stack:
        result = runner.invoke(app, ["export", str(checkpoint), "--out", str(out)])
        saved = None
        with contextlib.suppress(CheckpointError):
            saved = numbnn.io.save(model, ckpt, rng=np.random.default_rng(1), epoch=1, history=[{}])
    leftovers = [name for name in only_files(directory) if name != "filler"]
    if result.exit_code == 0:  # it fitted: the file is complete and identical in content
        assert out.exists()
        loaded = packed_model.load(out)
        x = np.random.default_rng(0).standard_normal((2, 28, 28, 1)).astype(np.float32)
        assert np.array_equal(loaded.predict_proba(x), packed_model.load(sources[0] / "reference.h5").predict_proba(x))
    else:
        assert_one_error_line(result, "No space left on device")
        assert "packed.h5" not in leftovers
    if saved is None:
        assert "ckpt.h5" not in leftovers
    else:
        assert numbnn.io.load_checkpoint(ckpt).epoch == 1
    assert not [name for name in leftovers if ".tmp-" in name]
    if leave_free == 0:
        assert result.exit_code == 2 and saved is None  # a full disk really was full
