"""Careless output paths: an output that is also an input, or that is not a regular file, is refused.

Each case checks the refusal (one ``error:`` line, exit 2) and that the input is byte-for-byte intact.
"""

import os
import stat

import pytest
from typer.testing import CliRunner

import numbnn.io
from numbnn.cli.main import app
from numbnn.errors import CheckpointError, InputError
from numbnn.inference.export import export_checkpoint
from numbnn.models import build_model
from cli_checks import assert_error_line as assert_one_error_line

runner = CliRunner()


@pytest.fixture()
def checkpoint(tmp_path):
    return numbnn.io.save(build_model("bnn-small", widths=(8, 8, 16)), tmp_path / "model.h5")


def alias(kind, target, tmp_path):
    """The same file under another name: itself, through ``..``, a symlink or a hard link."""
    if kind == "same":
        return target
    if kind == "dotdot":
        (tmp_path / "sub").mkdir()
        return tmp_path / "sub" / ".." / target.name
    other = tmp_path / f"{kind}.h5"
    (os.symlink if kind == "symlink" else os.link)(target, other)
    return other


@pytest.mark.parametrize("kind", ["same", "dotdot", "symlink", "hardlink"])
def test_export_refuses_to_write_over_its_checkpoint(checkpoint, tmp_path, kind):
    before = checkpoint.read_bytes()
    result = runner.invoke(app, ["export", str(checkpoint), "--out", str(alias(kind, checkpoint, tmp_path))])
    assert_one_error_line(result, "--out", "is also the checkpoint being exported")
    assert checkpoint.read_bytes() == before
    assert numbnn.io.load_checkpoint(checkpoint).config["name"] == "bnn-small"


@pytest.mark.parametrize("kind", ["same", "symlink"])
def test_train_refuses_to_write_over_its_teacher(checkpoint, tmp_path, kind):
    before = checkpoint.read_bytes()
    out = alias(kind, checkpoint, tmp_path)
    result = runner.invoke(app, ["train", "--model", "bnn-small", "--epochs", "1", "--limit", "32",
                                 "--teacher", str(checkpoint), "--out", str(out)])
    assert_one_error_line(result, "--out", "is also the --teacher checkpoint")
    assert checkpoint.read_bytes() == before


def test_two_step_refuses_a_step1_file_that_is_the_teacher(checkpoint, tmp_path):
    teacher = tmp_path / "run.step1.h5"
    checkpoint.rename(teacher)
    before = teacher.read_bytes()
    result = runner.invoke(app, ["train", "--model", "reactnet-a", "--recipe", "two-step", "--epochs", "2",
                                 "--teacher", str(teacher), "--out", str(tmp_path / "run.h5")])
    assert_one_error_line(result, "step 1's checkpoint", "is also the --teacher checkpoint")
    assert teacher.read_bytes() == before


def special_files(tmp_path):
    """A FIFO (any user can make one) and, as root, a copy of /dev/null (a character device)."""
    fifo = tmp_path / "fifo.h5"
    os.mkfifo(fifo)
    found = {"fifo": (fifo, "FIFO")}
    if os.geteuid() == 0:
        null = tmp_path / "null.h5"
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        found["device"] = (null, "character device")
    directory = tmp_path / "dir.h5"
    directory.mkdir()
    found["directory"] = (directory, "is a directory")
    return found


def assert_untouched(path, what):
    mode = os.stat(path).st_mode
    assert not stat.S_ISREG(mode), f"{what} was replaced by a regular file"


def test_special_outputs_are_refused_by_every_writer(checkpoint, tmp_path):
    model = numbnn.io.load(checkpoint)
    cases = special_files(tmp_path)
    for name, (path, fragment) in cases.items():
        result = runner.invoke(app, ["export", str(checkpoint), "--out", str(path)])
        assert_one_error_line(result, "--out", fragment)
        result = runner.invoke(app, ["train", "--model", "bnn-small", "--epochs", "1", "--out", str(path)])
        assert_one_error_line(result, "--out", fragment)
        with pytest.raises(CheckpointError, match=fragment):
            numbnn.io.save(model, path)
        with pytest.raises(InputError, match=fragment):
            export_checkpoint(checkpoint, path)
        assert_untouched(path, name)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.h5", *(p.name for p, _ in cases.values())])


def test_an_existing_regular_output_is_still_replaced(checkpoint, tmp_path):
    """Only the refusals above are new: an ordinary existing output is replaced as before."""
    out = tmp_path / "packed.h5"
    out.write_bytes(b"old")
    result = runner.invoke(app, ["export", str(checkpoint), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:11] == b"numbnn-hdf5"
