"""Resume never silently differs: the thread count is stored and reused, a two-step run resumes whole.

Choice (docs/reliability.md): a resume computes with the checkpoint's thread count; ``--threads`` with
another count is refused, because float products round differently and the run would diverge.
"""

import os
import signal

import numba
import numpy as np
import pytest
from typer.testing import CliRunner

import numbnn.io
from numbnn.cli.main import app
from cli_checks import assert_error_line


def assert_error_line_among(result, *fragments):
    """One ``error:`` line among the command's other stderr output."""
    assert_error_line(result, *fragments, alone=False)

runner = CliRunner()
SMALL = ["--limit", "64", "--test-limit", "20", "--batch-size", "32"]
TWO_STEP = ["--model", "reactnet-a", "--model-arg", "widths=8,8,8,8,8,8", "--recipe", "two-step", "--epochs", "3",
            "--step1-epochs", "2", *SMALL]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def same_state(a, b) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture()
def restore_threads():
    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


def test_threads_are_stored_and_a_resume_with_another_count_is_refused(tmp_path, restore_threads):
    path = tmp_path / "run.h5"
    result = invoke("train", "--model", "bnn-small", "--model-arg", "widths=4,4,8", "--epochs", 1, *SMALL,
                    "--threads", 1, "--out", path)
    assert result.exit_code == 0, result.output
    assert numbnn.io.load_checkpoint(path).extra["threads"] == 1
    before = path.read_bytes()
    assert_error_line_among(invoke("train", "--resume", path, "--epochs", 2, "--threads", 2),
                          "--threads 2", "trained with 1 thread", "resume with --threads 1")
    assert path.read_bytes() == before


def interrupt_after(monkeypatch, steps: int):
    """Send this process SIGINT after ``steps`` optimizer steps (a Ctrl-C: a resumable checkpoint is saved)."""
    import numbnn.train.loop as loop

    original, calls = loop.train_step, {"n": 0}

    def step_then_sigint(*args):
        out = original(*args)
        calls["n"] += 1
        if calls["n"] == steps:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(loop, "train_step", step_then_sigint)
    return lambda: monkeypatch.setattr(loop, "train_step", original)


def test_a_resume_without_threads_uses_the_stored_count_and_matches_bit_for_bit(tmp_path, monkeypatch,
                                                                              restore_threads):
    common = ["--model", "bnn-small", "--model-arg", "widths=4,4,8", *SMALL, "--seed", 3, "--epochs", 2]
    straight, split = tmp_path / "straight.h5", tmp_path / "split.h5"
    assert invoke("train", *common, "--threads", 1, "--out", straight).exit_code == 0
    undo = interrupt_after(monkeypatch, 3)  # epoch 2, step 1 of 2
    assert invoke("train", *common, "--threads", 1, "--out", split).exit_code == 130
    undo()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)  # whatever this process uses now ...
    resumed = invoke("train", "--resume", split)  # ... the resume computes with the stored 1 thread
    assert resumed.exit_code == 0, resumed.output
    assert numba.get_num_threads() == 1
    assert same_state(numbnn.io.load_checkpoint(split).state, numbnn.io.load_checkpoint(straight).state)


def test_two_step_interrupted_in_step_1_resumes_the_whole_recipe_bit_for_bit(tmp_path, monkeypatch, restore_threads):
    straight = tmp_path / "straight" / "run.h5"
    assert invoke("train", *TWO_STEP, "--threads", 1, "--out", straight).exit_code == 0
    undo = interrupt_after(monkeypatch, 3)  # step 1, epoch 2, first batch
    path = tmp_path / "split" / "run.h5"
    result = invoke("train", *TWO_STEP, "--threads", 1, "--out", path)
    step1 = path.with_name("run.step1.h5")
    assert result.exit_code == 130, result.output
    assert f"continue with: numbnn train --resume {step1}" in result.output
    assert step1.is_file() and not path.exists()  # the file the message names exists

    undo()
    resumed = invoke("train", "--resume", step1)
    assert resumed.exit_code == 0, resumed.output
    final = numbnn.io.load_checkpoint(path)  # step 2 ran into the final file
    assert final.config["args"]["binary_weights"] is True and final.epoch == 1
    assert same_state(final.state, numbnn.io.load_checkpoint(straight).state)
    assert same_state(numbnn.io.load_checkpoint(step1).state,
                      numbnn.io.load_checkpoint(straight.with_name("run.step1.h5")).state)
