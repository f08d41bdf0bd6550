"""A sweep stopped mid-run keeps the run's last epoch, and started again continues from it.

The sweep runs on a real LocalCluster (one worker process). Ctrl-C is simulated where it lands in a
real sweep: in the client's main thread, while it waits between polls of its tasks; it is raised as
soon as the client has stored the run's first epoch checkpoint.
"""

import time
from pathlib import Path

import pytest

import distributed  # noqa: F401  (the test extra installs it: missing, these tests fail rather than skip)

import numbnn.io
from numbnn.sweep import load_spec, runner, store

DATA = Path(__file__).resolve().parents[1] / "data" / "fashion-mnist"
EPOCHS = 4
SPEC = f"""
name = "stopped"
[defaults]
model = "bnn-small"
epochs = {EPOCHS}
limit = 1024
test_limit = 100
batch_size = 64
[defaults.model_args]
widths = [8, 8, 16]
[[runs]]
seed = 0
"""


def test_a_stopped_sweep_continues_its_run_from_the_last_epoch(tmp_path, monkeypatch):
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(SPEC)
    sweep = load_spec(spec_path)
    (run,) = sweep.runs
    out = tmp_path / "out"
    checkpoint = out / run.key / store.CHECKPOINT_FILE

    def ctrl_c_once_an_epoch_is_stored():
        if checkpoint.is_file():
            raise KeyboardInterrupt
        time.sleep(runner.POLL_S)
    monkeypatch.setattr(runner, "_pause", ctrl_c_once_an_epoch_is_stored)
    with pytest.raises(KeyboardInterrupt):
        runner.run_sweep(sweep, out, workers=1, data_dir=DATA, progress=False)
    monkeypatch.undo()

    stopped_at = numbnn.io.load_checkpoint(checkpoint).epoch
    assert 1 <= stopped_at < EPOCHS, "the run was not stopped mid-way"
    assert not (out / run.key / store.METRICS_FILE).exists()
    assert [state for _, state in runner.plan(sweep, out)] == ["interrupted"]

    outcome = runner.run_sweep(sweep, out, workers=1, data_dir=DATA, progress=False)
    assert (len(outcome.ran), len(outcome.failed)) == (1, 0)
    record = store.read_record(out / run.key / store.METRICS_FILE)
    assert record["resumed_from_epoch"] >= stopped_at and record["epochs"] == EPOCHS
    assert numbnn.io.load_checkpoint(checkpoint).epoch == EPOCHS
