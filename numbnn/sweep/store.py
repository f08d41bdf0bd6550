"""The results store: one directory per run, named by the run's key, under the sweep's output directory.

::

    <out>/sweep.json              the last spec run here: name, description, spec path, --set overrides,
                                  runs (key, label) in order, claims
    <out>/<key>/checkpoint.h5     the trained model (a resumable training checkpoint, numbnn.io); while
                                  the run trains, its latest epoch's checkpoint
    <out>/<key>/metrics.json      written last, only when the run finished: its presence means "done"
    <out>/<key>/error.json        written instead when the run failed (error type, message, traceback)

Only the client writes here: workers return records and checkpoint bytes through Dask
(:mod:`numbnn.sweep.task`), so ``<out>`` need not be visible to them.

Every file is written atomically (temporary file + rename), so a sweep killed at any moment leaves
either a complete ``metrics.json`` or none, and a restart can trust what it finds.
"""

from __future__ import annotations

import json
import math
import traceback
from pathlib import Path

import numpy as np

from numbnn._atomic import atomic_path, write_bytes_atomic
from numbnn.errors import InputError

SWEEP_FILE = "sweep.json"
METRICS_FILE = "metrics.json"
ERROR_FILE = "error.json"
CHECKPOINT_FILE = "checkpoint.h5"
RECORD_FORMAT = "numbnn-sweep-run"
RECORD_VERSION = 1


def run_dir(out, key: str) -> Path:
    return Path(out) / key


def is_finished(out, key: str) -> bool:
    return (run_dir(out, key) / METRICS_FILE).is_file()


def write_json(path, data) -> None:
    """Write ``data`` as indented JSON, atomically; NaN/inf become null (JSON has no such numbers)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as file:
            json.dump(_finite(data), file, indent=1, sort_keys=True, allow_nan=False)
            file.write("\n")


def read_json(path):
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def write_error(out, run: dict, error: BaseException, *, worker: str | None = None, tb: str | None = None) -> dict:
    """Record ``error`` as ``run``'s failure in ``<out>/<key>/error.json``; return the record."""
    record = error_record(run, error, worker=worker, tb=tb)
    save_run(out, run["key"], record, None)
    return record


def error_record(run: dict, error: BaseException, *, worker: str | None = None, tb: str | None = None) -> dict:
    """The ``error.json`` record of ``run`` failing with ``error``."""
    return {
        "format": RECORD_FORMAT,
        "version": RECORD_VERSION,
        "status": "failed",
        "key": run["key"],
        "label": run["label"],
        "config": {name: run[name] for name in ("model", "model_args", "train")},
        "error_type": type(error).__name__,
        "error": str(error) or type(error).__name__,
        "traceback": tb if tb is not None else "".join(traceback.format_exception(error)),
        "worker": worker,
    }


def save_run(out, key: str, record: dict, checkpoint: bytes | None) -> None:
    """Store a run's result under ``<out>/<key>/``: the checkpoint first, then its record.

    A finished run's ``metrics.json`` is written last (its presence means "done") and replaces an old
    ``error.json``; a failed run's ``error.json`` keeps any partial checkpoint, which a retry continues.
    """
    directory = run_dir(out, key)
    if checkpoint is not None:
        save_checkpoint(out, key, checkpoint)
    directory.mkdir(parents=True, exist_ok=True)
    if record["status"] == "finished":
        write_json(directory / METRICS_FILE, record)
        (directory / ERROR_FILE).unlink(missing_ok=True)
    else:
        write_json(directory / ERROR_FILE, record)


def save_checkpoint(out, key: str, checkpoint: bytes) -> None:
    """Store a run's checkpoint: its latest epoch's while it trains (a retry continues from it), then its last."""
    directory = run_dir(out, key)
    directory.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(directory / CHECKPOINT_FILE, checkpoint)


def read_checkpoint_bytes(out, key: str) -> bytes | None:
    """The checkpoint an interrupted or failed run left in ``<out>/<key>/``, to send with its retry."""
    path = run_dir(out, key) / CHECKPOINT_FILE
    return path.read_bytes() if path.is_file() and not is_finished(out, key) else None


def load_records(out) -> list[dict]:
    """Every run record under ``out``: ``metrics.json`` if the run finished, else its ``error.json``.

    Runs with neither (never started, or interrupted) are not listed. Unreadable files are an
    :class:`InputError` naming the file.
    """
    out = Path(out)
    if not out.is_dir():
        raise InputError(f"no such sweep directory {str(out)!r}")
    records = []
    for directory in sorted(path for path in out.iterdir() if path.is_dir()):
        for name in (METRICS_FILE, ERROR_FILE):
            path = directory / name
            if path.is_file():
                records.append(_checked_record(path))
                break
    return records


def read_record(path) -> dict:
    """A run record (``metrics.json`` or ``error.json``), checked; an unreadable one is an InputError that
    says how to get past it (the file is damaged: remove it and the sweep trains that run again)."""
    try:
        return _checked_record(Path(path))
    except InputError as error:
        raise InputError(f"{error}; remove that file to train the run again") from None


def load_sweep_file(out) -> dict | None:
    path = Path(out) / SWEEP_FILE
    return _checked_json(path) if path.is_file() else None


def _checked_record(path: Path) -> dict:
    record = _checked_json(path)
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT or "key" not in record:
        raise InputError(f"{path}: not a numbnn sweep run record")
    version = record.get("version", 0)
    if not isinstance(version, int) or version > RECORD_VERSION:
        raise InputError(f"{path}: written by a newer numbnn (record version {version!r})")
    problem = _record_problem(record)
    if problem:
        raise InputError(f"{path}: malformed run record ({problem})")
    return record


_NUMBER = (int, float)
_FIELDS = {  # what the tables, the report and the plots read from a record, by status
    "finished": {"key": str, "label": str, "config": dict, "test_accuracy": _NUMBER, "epochs": int, "seconds": _NUMBER,
                 "cost": dict, "history": list},
    "failed": {"key": str, "label": str, "config": dict, "error_type": str, "error": str},
}
_COST_FIELDS = ("params", "size_bytes", "ops", "ace")
_HISTORY_FIELDS = ("epoch", "train_loss")


def _record_problem(record: dict) -> str | None:
    """What is missing or of the wrong type in a run record, or None."""
    status = record.get("status")
    if status not in _FIELDS:
        return f"status {status!r}"
    for name, kind in _FIELDS[status].items():
        value = record.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{name} {value!r}"[:120]
    if not isinstance(record["config"].get("model", ""), str):
        return "config.model"
    if status == "finished":
        cost = record["cost"]
        for name in _COST_FIELDS:
            if not isinstance(cost.get(name), _NUMBER) or isinstance(cost.get(name), bool):
                return f"cost.{name} {cost.get(name)!r}"[:120]
        for entry in record["history"]:
            if not isinstance(entry, dict) or not all(isinstance(entry.get(name), _NUMBER) for name in _HISTORY_FIELDS):
                return f"history entry {entry!r}"[:120]
    return None


def _checked_json(path: Path):
    try:
        return read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: unreadable ({error})") from None


def _finite(value):
    """Plain JSON data: numpy scalars/arrays unwrapped, tuples as lists, non-finite floats as None."""
    if isinstance(value, dict):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_finite(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
