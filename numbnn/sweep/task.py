"""One run of a sweep, as a Dask worker executes it: train in-process, price the model, return the results.

:func:`train_run` is the task. It trains in a private temporary directory of the worker and returns
everything the run produced (the ``metrics.json`` record or the error record, and the checkpoint's
bytes) through Dask, so workers need no access to the client's ``--out``: no shared filesystem. The
client stores the result with :func:`store_result`. :func:`execute_run` does both in one process
(tests and library users call it directly).

It calls :func:`numbnn.train.run.train`, the same library function ``numbnn train`` uses, so a sweep
run and a ``numbnn train`` call with the same settings compute the same thing. It never raises for a
run that fails: the error goes into the returned record (``error.json`` once stored), so one bad
configuration does not stop the sweep. Inside a Dask worker it reports each finished epoch as an
event on ``topic`` so the client's progress bar moves between runs, and puts the checkpoint that epoch
wrote, ``(key, bytes)``, on the Dask queue named ``topic``; the client stores it under ``--out``.

A run whose directory holds a checkpoint but no ``metrics.json`` was interrupted (the sweep was stopped,
or the run failed). The client sends that checkpoint's bytes with the task; with the single-fit recipe
the run continues from it (the loop's exact resume); a two-step run, or a checkpoint that cannot be
continued, starts over. A worker killed mid-run loses nothing the client holds: Dask runs the task
again on another worker.
"""

from __future__ import annotations

import datetime
import os
import socket
import tempfile
import time
import traceback
from pathlib import Path

from numbnn.sweep import store


def execute_run(run: dict, out: str, *, data_dir: str | None = None, threads: int = 1, topic: str | None = None) -> dict:
    """Train ``run`` (:meth:`Run.as_dict`) into ``<out>/<key>/`` and return a short summary dict.

    ``threads``: Numba/BLAS threads for this run (a sweep uses 1: one single-threaded run per worker core).
    Summary keys: ``key``, ``label``, ``status`` ("finished", "failed" or "skipped" if it had finished
    before), ``test_accuracy``, ``seconds``, ``error``.
    """
    if store.is_finished(out, run["key"]):
        return {**_summary_of(run, None), "status": "skipped"}
    result = train_run(run, data_dir=data_dir, threads=threads, topic=topic,
                       checkpoint=store.read_checkpoint_bytes(out, run["key"]))
    return store_result(out, run, result)


def train_run(run: dict, *, data_dir: str | None = None, threads: int = 1, topic: str | None = None,
              checkpoint: bytes | None = None) -> dict:
    """The Dask task: train ``run`` in a private directory; return ``{"record", "checkpoint"}``.

    ``record``: the ``metrics.json`` record of a finished run, or the ``error.json`` record of a failed
    one; ``checkpoint``: the checkpoint file's bytes (also of a failed run, if it wrote one, so a retry
    continues from it), or None. ``checkpoint`` (argument): an interrupted run's checkpoint to continue.
    """
    started = time.perf_counter()
    worker = _worker_name()
    with tempfile.TemporaryDirectory(prefix="numbnn-run-") as scratch:
        directory = Path(scratch)
        path = directory / store.CHECKPOINT_FILE
        try:
            if checkpoint is not None:
                path.write_bytes(checkpoint)
            record = _train_and_measure(run, directory, data_dir, threads, topic, worker)
        except Exception as error:  # noqa: BLE001  (any failure of one run is recorded, never propagated)
            record = store.error_record(run, error, worker=worker, tb=traceback.format_exc())
            record["seconds"] = time.perf_counter() - started
        return {"record": record, "checkpoint": path.read_bytes() if path.is_file() else None}


def store_result(out, run: dict, result: dict) -> dict:
    """Write what :func:`train_run` returned into ``<out>/<key>/``; return the run's short summary."""
    record = result["record"]
    store.save_run(out, run["key"], record, result.get("checkpoint"))
    return _summary_of(run, record)


def _summary_of(run: dict, record: dict | None) -> dict:
    summary = {"key": run["key"], "label": run["label"], "status": "finished", "test_accuracy": None,
               "seconds": 0.0, "error": None}
    if record is None:
        return summary
    if record["status"] == "failed":
        return {**summary, "status": "failed", "error": f"{record['error_type']}: {record['error']}",
                "seconds": record.get("seconds", 0.0)}
    return {**summary, "test_accuracy": record["test_accuracy"], "seconds": record["seconds"]}


def _train_and_measure(run: dict, directory: Path, data_dir, threads: int, topic, worker: str) -> dict:
    import numba  # deferred: the process that submits runs never trains (start-up time)

    import numbnn  # deferred: the process that submits runs never trains (start-up time)
    import numbnn.io
    from numbnn.kernels.platform import cpu_model
    from numbnn.models.cost import summarize
    from numbnn.train import run as training
    from numbnn.threads import set_threads

    started = time.perf_counter()
    thread_counts = set_threads(threads)
    checkpoint = directory / store.CHECKPOINT_FILE
    resume_epoch = _resumable_epoch(checkpoint, run["train"])
    if resume_epoch is None:
        _remove_partial_files(checkpoint)
    report = _EpochReporter(topic, run["key"], checkpoint)
    report.emit("started", epoch=resume_epoch or 0)
    if resume_epoch is not None:
        outcome = training.train(options={"epochs": run["train"]["epochs"]}, resume=checkpoint, out=checkpoint,
                                 data_dir=data_dir, progress=False, after_step=report.after_step)
    else:
        outcome = training.train(run["model"], options=run["train"], model_args=run["model_args"], out=checkpoint,
                                 data_dir=data_dir, progress=False, after_step=report.after_step)
    result = outcome.result
    if result.interrupted:
        raise RuntimeError(f"training was interrupted after {result.epochs_completed} epoch(s)")
    cost = summarize(numbnn.io.load(checkpoint)).as_dict()["total"]
    last = result.history[-1]
    record = {
        "format": store.RECORD_FORMAT,
        "version": store.RECORD_VERSION,
        "status": "finished",
        "key": run["key"],
        "label": run["label"],
        "config": {name: run[name] for name in ("model", "model_args", "train")},
        "test_accuracy": result.test_accuracy,
        "epochs": result.epochs_completed,
        "seconds": time.perf_counter() - started,
        "train_seconds": sum(epoch["seconds"] for epoch in result.history),
        "images_per_s": result.images_per_s,
        "history": result.history,
        "cost": cost,
        "checkpoint": store.CHECKPOINT_FILE,
        "resumed_from_epoch": resume_epoch,
        "threads": {"numba": numba.get_num_threads(), "numba_pool": numba.config.NUMBA_NUM_THREADS,
                    "blas": thread_counts["blas"]},
        "worker": worker,
        "cpu_model": cpu_model(),  # seconds mean something only beside the CPU that took them
        "numbnn_version": numbnn.__version__,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    record.update({key: last[key] for key in ("fc_test_accuracy", "tree_test_accuracy", "trees") if key in last})
    report.emit("finished")
    return record


def _resumable_epoch(checkpoint: Path, train: dict) -> int | None:
    """Epochs completed by an interrupted single-fit run's checkpoint that can be continued, else None."""
    if train["recipe"] != "single" or not checkpoint.is_file():
        return None
    from numbnn.errors import NumbnnError  # deferred: the process that submits runs never trains (start-up time)
    from numbnn.train.checkpoint import read_training_state

    try:
        state = read_training_state(checkpoint)
    except (NumbnnError, OSError):
        return None
    if state.config.to_dict() != train or state.epoch >= train["epochs"]:
        return None
    return state.epoch


def _remove_partial_files(checkpoint: Path) -> None:
    """Start over cleanly: drop a checkpoint (and a two-step run's step-1 file) that will not be continued."""
    # deferred: the process that submits runs never trains (start-up time)
    from numbnn.train.recipes import step1_checkpoint_path

    checkpoint.unlink(missing_ok=True)
    step1_checkpoint_path(checkpoint).unlink(missing_ok=True)


def _worker_name() -> str:
    worker = _current_worker()
    return worker.address if worker is not None else f"{socket.gethostname()}:{os.getpid()}"


class _EpochReporter:
    """Tells the client about the run: events ``{"key", "event", "epoch"}`` on the topic, "started"
    (``epoch``: epochs a resumed run already has), "epoch" (one more epoch finished) and "finished"; and,
    after each epoch that wrote the checkpoint, ``(key, checkpoint bytes)`` on the queue of the same name.

    The loop's ``after_step(epoch, step)`` hook sees a new epoch when the step index does not grow
    (steps restart at 0 each epoch, including step 2 of the two-step recipe). Outside a Dask worker,
    or without a topic, nothing is sent.
    """

    def __init__(self, topic: str | None, key: str, checkpoint: Path):
        self.key, self.last = key, None
        self.worker = _current_worker() if topic is not None else None
        self.topic, self.checkpoint = topic, checkpoint
        self.queue, self.sent_version = None, self._version()

    def emit(self, event: str, epoch: int = 0) -> None:
        if self.worker is not None:
            self.worker.log_event(self.topic, {"key": self.key, "event": event, "epoch": int(epoch)})

    def after_step(self, epoch: int, step: int) -> None:
        if self.last is not None and step <= self.last[1]:
            self.emit("epoch")
            self._send_checkpoint()
        self.last = (epoch, step)

    def _send_checkpoint(self) -> None:
        """Send the checkpoint if the loop rewrote it since the last send (it does every ``save_every`` epochs)."""
        version = self._version()
        if self.worker is None or version is None or version == self.sent_version:
            return
        from distributed import Queue  # deferred: the process that submits runs never trains (start-up time)

        if self.queue is None:
            self.queue = Queue(self.topic)
        self.queue.put((self.key, self.checkpoint.read_bytes()))
        self.sent_version = version

    def _version(self):
        """What tells one write of the checkpoint from the next (each is a new file renamed into place), or None."""
        try:
            stat = self.checkpoint.stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _current_worker():
    try:
        from distributed import get_worker  # deferred: the process that submits runs never trains (start-up time)

        return get_worker()
    except (ImportError, ValueError):
        return None
