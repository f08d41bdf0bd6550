"""The results store: one directory per run, named by the run's key, under the sweep's output directory.

::

    <out>/sweep.json              the last spec run here: name, description, spec path, --set overrides,
                                  runs (key, label) in order, claims
    <out>/<key>/checkpoint.h5     the trained model (a resumable training checkpoint, numbnn.io)
    <out>/<key>/metrics.json      written last, only when the run finished: its presence means "done"
    <out>/<key>/error.json        written instead when the run failed (error type, message, traceback)

Every file is written atomically (temporary file + rename), so a sweep killed at any moment leaves
either a complete ``metrics.json`` or none, and a restart can trust what it finds.
"""

from __future__ import annotations

import json
import math
import traceback
from pathlib import Path

import numpy as np

from numbnn._atomic import atomic_path
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
    record = {
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
    directory = run_dir(out, run["key"])
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / ERROR_FILE, record)
    return record


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


def load_sweep_file(out) -> dict | None:
    path = Path(out) / SWEEP_FILE
    return _checked_json(path) if path.is_file() else None


def _checked_record(path: Path) -> dict:
    record = _checked_json(path)
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT or "key" not in record:
        raise InputError(f"{path}: not a numbnn sweep run record")
    if record.get("version", 0) > RECORD_VERSION:
        raise InputError(f"{path}: written by a newer numbnn (record version {record['version']})")
    return record


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
