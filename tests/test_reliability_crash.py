"""Crash-safe training with real ``numbnn train`` processes killed from outside.

Three runs of the same small training start together (same seed, one thread each, a checkpoint
every epoch): a reference that runs to the end; one killed with SIGKILL as soon as its first
checkpoint exists (mid-epoch 2, or wherever the kill lands); one sent SIGTERM after its first epoch
line. Then both interrupted runs are resumed with ``--resume`` and must reach exactly the reference's
weights (every state entry bit-identical) and accuracies. Before the first resume, a temporary file
named like one a killed writer leaves behind is put next to the checkpoint: the resumed run must
remove it. (In-process signal tests and mid-write kills of the writer itself are in
tests/test_train_loop.py, tests/test_cli_train.py and tests/test_io_checkpoint.py.)
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import numbnn.io
from numbnn.io import verify_envelope

EPOCHS = 3
TRAIN = ["train", "--model", "bnn-small", "--model-arg", "widths=[8,8,16]", "--limit", 1024, "--test-limit", 100,
         "--batch-size", 32, "--epochs", EPOCHS, "--save-every", 1, "--seed", 7, "--threads", 1, "--json"]
DEADLINE_S = 300  # for the whole scenario on a busy machine; each stage normally takes seconds
NUMBNN = [sys.executable, "-c", "import sys; from numbnn.cli.main import run; sys.argv[0] = 'numbnn'; run()"]


def start(directory: Path, *args) -> subprocess.Popen:
    """``numbnn *args`` in ``directory``, stdout and stderr into files there (a full pipe cannot block it)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = (directory / "stdout.txt").open("ab")
    err = (directory / "stderr.txt").open("ab")
    return subprocess.Popen([*NUMBNN, *map(str, args)], cwd=directory, stdout=out, stderr=err)


def wait_until(condition, processes, what: str, deadline: float) -> None:
    """Poll ``condition`` every 20 ms; fail if a process ends first or the deadline passes."""
    while not condition():
        for process in processes:
            if process.poll() is not None:
                pytest.fail(f"process exited with {process.returncode} before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def finish(process: subprocess.Popen, deadline: float) -> int:
    return process.wait(timeout=max(1.0, deadline - time.monotonic()))


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.suffix == ".h5" or ".tmp-" in p.name)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    deadline = time.monotonic() + DEADLINE_S
    dirs = {name: root / name for name in ("reference", "killed", "terminated")}
    processes = {name: start(d, *TRAIN, "--out", d / "run.h5") for name, d in dirs.items()}
    seen = SimpleNamespace(dirs=dirs)
    try:
        killed, terminated = processes["killed"], processes["terminated"]
        checkpoint = dirs["killed"] / "run.h5"
        log = dirs["terminated"] / "stderr.txt"
        # Watch both at once: each is signalled the moment its condition holds (an epoch takes about a
        # second, so waiting for one run first could let the other finish before its signal).
        pending = {"killed": (checkpoint.exists, signal.SIGKILL),
                   "terminated": (lambda: f"epoch 1/{EPOCHS}:" in log.read_text(), signal.SIGTERM)}
        while pending:
            for name, (ready, signum) in list(pending.items()):
                if ready():
                    processes[name].send_signal(signum)
                    del pending[name]
            wait_until(lambda: not pending or any(ready() for ready, _ in pending.values()),
                       [processes[name] for name in pending], f"the signal points of {sorted(pending)}", deadline)
        seen.killed_code = finish(killed, deadline)
        seen.killed_pid = killed.pid
        seen.after_kill = listing(dirs["killed"])
        seen.terminated_code = finish(terminated, deadline)
        seen.terminated_stderr = log.read_text()
        seen.after_term = listing(dirs["terminated"])

        # What a writer killed mid-save leaves: a hidden temporary named with its (now dead) process id.
        seen.stale = dirs["killed"] / f".run.h5.tmp-{killed.pid}-0badf00d"
        seen.stale.write_bytes(b"half of a checkpoint")
        seen.before_resume = {name: numbnn.io.load_checkpoint(dirs[name] / "run.h5") for name in ("killed", "terminated")}
        resumed = {name: start(dirs[name], "train", "--resume", dirs[name] / "run.h5", "--threads", 1, "--json")
                   for name in ("killed", "terminated")}
        processes.update({f"{name} resumed": process for name, process in resumed.items()})
        seen.codes = {name: finish(process, deadline) for name, process in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return seen


def final_json(directory: Path) -> dict:
    return json.loads((directory / "stdout.txt").read_text().strip().splitlines()[-1])


def test_sigkill_after_a_checkpoint_leaves_it_complete_and_nothing_half_written(scenario):
    assert scenario.killed_code == -signal.SIGKILL
    names = scenario.after_kill
    assert "run.h5" in names
    assert all(name == "run.h5" or name.startswith(".run.h5.tmp-") for name in names), names  # never a partial run.h5
    checkpoint = scenario.dirs["killed"] / "run.h5"
    saved = scenario.before_resume["killed"]
    verify_envelope(checkpoint)  # complete and unmodified: the size and sha256 it was written with
    assert 1 <= saved.epoch < EPOCHS and saved.extra["step"] == 0  # a periodic, epoch-end checkpoint
    assert len(saved.history) == saved.epoch
    numbnn.io.load(checkpoint)  # rebuilds the model with the stored weights


def test_sigterm_saves_a_resumable_checkpoint_and_says_how_to_continue(scenario):
    assert scenario.terminated_code == 130, scenario.terminated_stderr
    assert "Traceback" not in scenario.terminated_stderr
    assert "continue with: numbnn train --resume" in scenario.terminated_stderr
    saved = scenario.before_resume["terminated"]
    assert 1 <= saved.epoch < EPOCHS
    assert scenario.after_term == ["run.h5"]


def test_resumed_runs_finish(scenario):
    for name in ("reference", "killed resumed", "terminated resumed"):
        assert scenario.codes[name] == 0, (name, scenario.codes)


@pytest.mark.parametrize("interrupted", ["killed", "terminated"])
def test_resume_reaches_the_uninterrupted_weights_and_accuracy_exactly(scenario, interrupted):
    reference = numbnn.io.load_checkpoint(scenario.dirs["reference"] / "run.h5")
    resumed = numbnn.io.load_checkpoint(scenario.dirs[interrupted] / "run.h5")
    assert resumed.epoch == reference.epoch == EPOCHS
    assert resumed.state.keys() == reference.state.keys()
    for name in reference.state:
        assert np.array_equal(resumed.state[name], reference.state[name]), name
    for key in ("train_loss", "train_accuracy", "test_accuracy", "test_loss"):
        assert [h[key] for h in resumed.history] == [h[key] for h in reference.history], key
    assert final_json(scenario.dirs[interrupted])["test_accuracy"] == final_json(scenario.dirs["reference"])["test_accuracy"]


def test_the_next_run_removes_the_temporary_a_killed_writer_left(scenario):
    assert not scenario.stale.exists()
    assert listing(scenario.dirs["killed"]) == ["run.h5"]
