"""Run a sweep on Dask: skip finished runs, submit the rest as tasks, follow them on one progress bar.

Each pending run becomes one task, :func:`numbnn.sweep.task.train_run`, which returns the run's record
and checkpoint bytes through Dask; the client writes them under ``--out`` (workers never touch it, so
no shared filesystem is needed). The client decides what to submit (a run whose ``metrics.json``
exists is skipped, so an interrupted sweep restarted with the same spec redoes nothing that finished;
an interrupted run's checkpoint is sent with its task), shows progress, and records failures the task
could not record itself (numbnn missing on a worker, a task whose workers kept dying). A worker
killed mid-run is handled by the scheduler, which runs its task again on another worker.
Progress counts epochs: workers send an event per finished epoch (Dask's event log, handled on the
client's event-loop thread), so the bar moves during long runs, not only when a run ends.
Each epoch's checkpoint comes back too (a Dask queue the client drains between polls of its tasks)
and is stored as ``<out>/<key>/checkpoint.h5``, so a sweep stopped with Ctrl-C, or whose client died,
continues its unfinished runs from their last epoch when started again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from numbnn.errors import InputError
from numbnn.progress import ProgressBar
from numbnn.sweep import store
from numbnn.sweep.cluster import dask_client, default_workers, import_distributed
from numbnn.sweep.runs import Run
from numbnn.sweep.spec import Sweep
from numbnn.sweep.task import store_result, train_run

POLL_S = 0.5  # how often the client looks for finished runs and new epoch checkpoints


@dataclass
class SweepOutcome:
    sweep: Sweep
    out: Path
    records: list[dict]  # one per run of the spec, in spec order: metrics.json, error.json, or status "missing"
    skipped: list[str]  # keys already finished before this call
    ran: list[str]  # keys this call trained successfully
    failed: list[str]  # keys that failed in this call
    wall_seconds: float
    cluster: str  # where the runs went

    def as_dict(self) -> dict:
        return {
            "name": self.sweep.name, "out": str(self.out), "cluster": self.cluster, "runs": len(self.sweep.runs),
            "skipped": len(self.skipped), "ran": len(self.ran), "failed": len(self.failed),
            "wall_seconds": self.wall_seconds,
            "results": [_brief(record) for record in self.records],
        }


def plan(sweep: Sweep, out) -> list[tuple[Run, str]]:
    """Each run with its state in ``out``: "finished", "failed" (will be retried), "interrupted" (has an
    epoch checkpoint it continues from) or "pending"."""
    states = []
    for run in sweep.runs:
        directory = store.run_dir(out, run.key)
        if (directory / store.METRICS_FILE).is_file():
            store.read_record(directory / store.METRICS_FILE)  # a damaged record is reported before any work
            states.append((run, "finished"))
        elif (directory / store.ERROR_FILE).is_file():
            store.read_record(directory / store.ERROR_FILE)
            states.append((run, "failed"))
        elif (directory / store.CHECKPOINT_FILE).is_file():
            states.append((run, "interrupted"))
        else:
            states.append((run, "pending"))
    return states


def run_sweep(sweep: Sweep, out, *, scheduler: str | None = None, workers: int | None = None,
              data_dir=None, progress: bool = True) -> SweepOutcome:
    """Train every run of ``sweep`` not yet finished in ``out`` on Dask (see :mod:`numbnn.sweep.cluster`)."""
    started = time.perf_counter()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"--out: cannot create the directory {str(out)!r}: {error.strerror}") from None
    store.write_json(out / store.SWEEP_FILE, {
        "name": sweep.name, "description": sweep.description, "spec": sweep.source, "overrides": sweep.overrides,
        "runs": [{"key": run.key, "label": run.label} for run in sweep.runs],
        "claims": [dataclasses.asdict(claim) for claim in sweep.claims],
    })
    states = plan(sweep, out)
    todo = [run for run, state in states if state != "finished"]
    skipped = [run.key for run, state in states if state == "finished"]
    summaries: dict[str, dict] = {}
    cluster = scheduler or f"local cluster, {workers or default_workers()} single-threaded workers"
    if todo:
        import_distributed()
        with dask_client(scheduler, workers) as client, ProgressBar(progress) as bar:
            summaries = _run_on(client, todo, out, data_dir, _Tracker(todo, bar))
    records = [_record(out, run) for run in sweep.runs]
    ran = [key for key, summary in summaries.items() if summary["status"] == "finished"]
    failed = [key for key, summary in summaries.items() if summary["status"] == "failed"]
    return SweepOutcome(sweep, out, records, skipped, ran, failed, time.perf_counter() - started, cluster)


def _run_on(client, runs: list[Run], out: Path, data_dir, tracker: "_Tracker") -> dict[str, dict]:
    """Submit one task per run and wait for all of them, storing epoch checkpoints as they come;
    returns each run's summary by key."""
    import distributed  # optional dependency (numbnn[sweep]), slow to import (start-up time)

    topic = f"numbnn-sweep-{uuid.uuid4().hex}"
    client.subscribe_topic(topic, lambda event: tracker.event(event[1]))  # event = (timestamp, message)
    checkpoints = distributed.Queue(topic, client=client)
    token = uuid.uuid4().hex[:8]
    futures = {
        client.submit(train_run, run.as_dict(), data_dir=str(data_dir) if data_dir else None, threads=1, topic=topic,
                      checkpoint=store.read_checkpoint_bytes(out, run.key), key=f"numbnn-run-{run.key}-{token}",
                      pure=False): run
        for run in runs
    }
    summaries = {}
    waiting = distributed.as_completed(futures)
    try:
        while not waiting.is_empty():
            for future in waiting.next_batch(block=False):
                run = futures[future]
                summaries[run.key] = _summary(future, run, out)
                tracker.finish(summaries[run.key])
            _store_checkpoints(checkpoints, out, summaries)
            _pause()
    except BaseException:
        with contextlib.suppress(Exception):  # a lost scheduler must not hide why the sweep stopped
            _store_checkpoints(checkpoints, out, summaries)  # what the runs cut now have done is kept
        client.cancel(list(futures))
        raise
    finally:
        client.unsubscribe_topic(topic)
        checkpoints.close()
    return summaries


def _pause() -> None:
    """Wait between two looks at the tasks and the checkpoint queue (where a Ctrl-C usually lands)."""
    time.sleep(POLL_S)


def _store_checkpoints(checkpoints, out: Path, ended: dict) -> None:
    """Write every epoch checkpoint waiting in the queue, except those of runs that have ended (their
    task's own result, stored by then, is the final word)."""
    for key, data in checkpoints.get(batch=True):
        if key not in ended:
            store.save_checkpoint(out, key, data)


def _summary(future, run: Run, out: Path) -> dict:
    """The task's own summary, or (the task itself failed: dead worker, import error) a recorded failure."""
    if future.status == "finished":
        return store_result(out, run.as_dict(), future.result())
    error = future.exception() if future.status == "error" else RuntimeError(f"task {future.status}")
    record = store.write_error(out, run.as_dict(), error, tb=f"{type(error).__name__}: {error}\n(raised outside the run)")
    return {"key": run.key, "label": run.label, "status": "failed", "test_accuracy": None, "seconds": 0.0,
            "error": f"{record['error_type']}: {record['error']}"}


def _record(out: Path, run: Run) -> dict:
    directory = store.run_dir(out, run.key)
    for name in (store.METRICS_FILE, store.ERROR_FILE):
        if (directory / name).is_file():
            return store.read_record(directory / name)
    return {"key": run.key, "label": run.label, "status": "missing", "config": run.config}


def _brief(record: dict) -> dict:
    brief = {key: record.get(key) for key in ("key", "label", "status", "test_accuracy", "epochs", "seconds")}
    brief["model"] = record.get("config", {}).get("model")
    if record.get("status") == "failed":
        brief["error"] = f"{record['error_type']}: {record['error']}"
    if "cost" in record:
        brief.update({name: record["cost"][name] for name in ("params", "size_bytes", "ops", "ace")})
    return brief


class _Tracker:
    """The sweep's one progress bar, in epochs: +1 per epoch event, the rest when a run ends.

    Events arrive on the Dask client's thread and run ends on the caller's, so both hold one lock.
    """

    def __init__(self, runs: list[Run], bar: ProgressBar):
        self.lock = threading.Lock()
        self.bar = bar
        self.epochs = {run.key: run.train["epochs"] for run in runs}
        self.counted = dict.fromkeys(self.epochs, 0)
        self.running, self.ended = set(), {}
        self.task = bar.task("sweep (epochs)", sum(self.epochs.values()))
        self._refresh(0)

    def event(self, message: dict) -> None:
        """A worker's event: "started" (with the epochs a resumed run already has) or "epoch" (one more)."""
        key = message.get("key")
        with self.lock:
            if key not in self.epochs or key in self.ended:
                return  # events can arrive after the task's result; the run is already fully counted then
            if message.get("event") == "started":
                self.running.add(key)
                self._advance(key, message.get("epoch", 0))
            elif message.get("event") == "epoch":
                self._advance(key, 1)

    def finish(self, summary: dict) -> None:
        """A run ended (its task's summary): count all its epochs and log one line about it."""
        key = summary["key"]
        with self.lock:
            self.ended[key] = summary["status"]
            self.running.discard(key)
            self._advance(key, self.epochs[key])
        if summary["status"] == "failed":
            self.bar.log(f"failed: {summary['label']} ({key}): {summary['error']}")
        else:
            accuracy = summary["test_accuracy"]
            shown = f"test accuracy {accuracy:.2%}" if accuracy is not None else "no test accuracy"
            self.bar.log(f"{summary['status']}: {summary['label']} ({key}): {shown}, {summary['seconds']:.0f} s")

    def _advance(self, key: str, epochs: int) -> None:
        step = max(0, min(epochs, self.epochs[key] - self.counted[key]))
        self.counted[key] += step
        self._refresh(step)

    def _refresh(self, advance: int) -> None:
        failed = sum(status == "failed" for status in self.ended.values())
        text = f"{len(self.ended) - failed}/{len(self.epochs)} runs done, {failed} failed, {len(self.running)} running"
        self.bar.update(self.task, advance=advance, metrics=text)
