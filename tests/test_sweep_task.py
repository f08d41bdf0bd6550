"""One sweep run executed in-process (no Dask): what it writes, that it is `numbnn train`'s computation,
how a failure is recorded, and how an interrupted run continues from its checkpoint."""

import json
import numba
import pytest

from numbnn.kernels.platform import cpu_model
from numbnn.models import build_model
from numbnn.models.cost import summarize
from numbnn.sweep import parse_spec, store
from numbnn.sweep.task import _resumable_epoch, execute_run
from numbnn.train.run import evaluate_checkpoint
from numbnn.threads import set_threads

TINY = {"model": "bnn-small", "epochs": 1, "limit": 96, "test_limit": 100, "batch_size": 48,
        "model_args": {"widths": [8, 8, 16]}}


@pytest.fixture
def restore_threads():
    """execute_run limits this process to 1 thread, as on a worker; give the other tests their threads back."""
    threads = numba.get_num_threads()
    yield
    set_threads(threads)


def _run(**changes):
    return parse_spec({"runs": [{**TINY, **changes}]}).runs[0]


def test_a_run_writes_checkpoint_and_metrics_that_match_the_checkpoint(tmp_path, restore_threads):
    run = _run()
    summary = execute_run(run.as_dict(), str(tmp_path))
    assert summary["status"] == "finished", summary
    directory = tmp_path / run.key
    record = json.loads((directory / store.METRICS_FILE).read_text())
    assert record["config"] == json.loads(json.dumps(run.config)) and record["label"] == run.label
    assert record["epochs"] == 1 and len(record["history"]) == 1 and record["resumed_from_epoch"] is None
    assert record["test_accuracy"] == summary["test_accuracy"] == record["history"][-1]["test_accuracy"]
    assert record["seconds"] >= record["train_seconds"] > 0
    assert record["threads"]["numba"] == 1
    assert record["cpu_model"] == cpu_model()  # the CPU its seconds were measured on
    # The reported accuracy is the stored model's: `numbnn eval`'s computation on the same test images.
    assert evaluate_checkpoint(directory / store.CHECKPOINT_FILE, limit=100, progress=False).accuracy == record["test_accuracy"]
    expected = summarize(build_model("bnn-small", **run.model_args)).as_dict()["total"]
    assert record["cost"] == expected and record["cost"]["bops"] > 0
    assert not (directory / store.ERROR_FILE).exists()
    assert execute_run(run.as_dict(), str(tmp_path))["status"] == "skipped"  # finished runs are never redone


def test_a_failing_run_records_its_error_and_returns(tmp_path, restore_threads):
    run = _run(model_args={"widths": [8, 12]})
    summary = execute_run(run.as_dict(), str(tmp_path))
    assert summary["status"] == "failed"
    assert summary["error"] == "InputError: a block's width can only grow by a whole factor, got 8 -> 12"
    record = json.loads((tmp_path / run.key / store.ERROR_FILE).read_text())
    assert record["error_type"] == "InputError" and record["key"] == run.key
    assert "Traceback" in record["traceback"] and record["config"]["model_args"]["widths"] == [8, 12]
    assert not (tmp_path / run.key / store.METRICS_FILE).exists()
    assert store.load_records(tmp_path) == [record]


def test_an_interrupted_run_continues_from_its_checkpoint_exactly(tmp_path, monkeypatch, restore_threads):
    import numbnn.train.loop as loop

    run = _run(epochs=2)
    original = loop.train_step

    def crash_in_epoch_two(model, x, y, target, config, optimizer, epoch, step, steps):
        if epoch == 1:
            raise RuntimeError("worker lost")
        return original(model, x, y, target, config, optimizer, epoch, step, steps)

    monkeypatch.setattr(loop, "train_step", crash_in_epoch_two)
    assert execute_run(run.as_dict(), str(tmp_path))["status"] == "failed"
    checkpoint = tmp_path / run.key / store.CHECKPOINT_FILE
    assert _resumable_epoch(checkpoint, run.train) == 1  # the checkpoint written after epoch 1
    assert _resumable_epoch(checkpoint, {**run.train, "lr": 0.5}) is None  # not this run's: start over
    assert _resumable_epoch(checkpoint, {**run.train, "epochs": 1}) is None  # already complete: start over

    monkeypatch.setattr(loop, "train_step", original)
    assert execute_run(run.as_dict(), str(tmp_path))["status"] == "finished"
    record = json.loads((tmp_path / run.key / store.METRICS_FILE).read_text())
    assert record["resumed_from_epoch"] == 1 and record["epochs"] == 2
    assert not (tmp_path / run.key / store.ERROR_FILE).exists()  # the retry replaced the failure
    # Continuing is exact: the same numbers as the run trained without interruption.
    assert execute_run(run.as_dict(), str(tmp_path / "straight"))["status"] == "finished"
    straight = json.loads((tmp_path / "straight" / run.key / store.METRICS_FILE).read_text())
    drop = ("seconds", "images_per_s")
    assert [{k: v for k, v in h.items() if k not in drop} for h in record["history"]] == \
        [{k: v for k, v in h.items() if k not in drop} for h in straight["history"]]
