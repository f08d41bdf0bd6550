"""``numbnn bench model``: images/s and latency of a packed model against the float-simulated model.

Both run in this process on the same uint8 images (normalisation included), at batch 1 and 256:
"warm" is the median of ``repeats`` timed calls after one untimed call. "Cold" runs in a fresh Python
process (:mod:`numbnn.bench.cold_start`) and times loading the model plus its first call, JIT
compilation or Numba's on-disk cache load included: once with the usual cache (warmed first by an
untimed run), once with ``NUMBA_CACHE_DIR`` pointing at an empty directory (everything compiles); the
process's whole wall time, interpreter start and imports included, is reported too.

The float model is the checkpoint's own eval-mode forward pass (``numbnn.io.load``), the path training
uses to evaluate. The machine's load average is recorded with the figures: other work on the cores
skews them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

import numbnn.io
from numbnn.autograd import Tensor, no_grad
from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.inference.compiler import compile
from numbnn.kernels.platform import cpu_model

BATCHES = (1, 256)
QUICK_BATCHES = (1, 8)


def run_model_benchmark(checkpoint, repeats: int = 5, quick: bool = False, cold: bool = True, progress=None) -> dict:
    """Time the packed and the float model of ``checkpoint`` (see the module docstring); a JSON-ready dict.

    ``quick``: batches 1 and 8, and no cold runs (a smoke test; the figures mean little).
    """
    progress = progress or (lambda text: None)
    check_int(repeats, "repeats")
    load_before = os.getloadavg()[0]
    progress("loading and compiling")
    model = numbnn.io.load(checkpoint)
    model.eval()
    packed = compile(model)
    batches = QUICK_BATCHES if quick else BATCHES
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (max(batches), *packed.input_shape[:2]), dtype=np.uint8)
    result = {"model": packed.meta["config"]["name"], "checkpoint": str(checkpoint), "repeats": repeats,
              "cpu_model": cpu_model(), "threads": numba.get_num_threads(), "packed": {}, "float": {}, "speedup": {}}
    for batch in batches:
        progress(f"batch {batch}")
        x = images[:batch]
        packed_s = _median_seconds(lambda: packed.predict(x), repeats)
        float_s = _median_seconds(lambda: _float_forward(model, packed, x), repeats)
        result["packed"][f"batch_{batch}"] = _rates(batch, packed_s)
        result["float"][f"batch_{batch}"] = _rates(batch, float_s)
        result["speedup"][f"batch_{batch}"] = round(float_s / packed_s, 2)
    result["packed_op_ms"] = op_breakdown(packed, images[:max(batches)], repeats)
    if cold and not quick:
        with tempfile.TemporaryDirectory() as directory:
            exported = Path(directory) / "model.h5"
            packed.save(exported)
            result["cold"] = {}
            for kind, path in (("packed", exported), ("float", Path(checkpoint))):
                progress(f"cold start: {kind}")
                result["cold"][kind] = cold_starts(kind, path)
    result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return result


def op_breakdown(packed, images, repeats: int) -> dict:
    """Median milliseconds per op kind (summed over the graph's nodes of that kind) for one batch."""
    x = packed.prepare(images)
    runs = []
    for _ in range(repeats):
        seconds = {}
        packed.program.run(x, op_seconds=seconds)
        runs.append(seconds)
    return {name: round(1e3 * float(np.median([run[name] for run in runs])), 3) for name in sorted(runs[0])}


def cold_starts(kind: str, path: Path) -> dict:
    """First-call timings of ``kind`` ("packed" file or "float" checkpoint) in fresh processes."""
    _cold_run(kind, path)  # make sure the on-disk cache holds everything
    with_cache = _cold_run(kind, path)
    with tempfile.TemporaryDirectory() as empty:
        without_cache = _cold_run(kind, path, {"NUMBA_CACHE_DIR": empty})
    return {"with_cache": with_cache, "without_cache": without_cache}


def _cold_run(kind: str, path: Path, env_extra: dict | None = None) -> dict:
    env = {**os.environ, **(env_extra or {})}
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "numbnn.bench.cold_start", kind, str(path)],
                         capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if run.returncode != 0:
        raise InputError(f"cold-start run of the {kind} model failed: {run.stderr.strip().splitlines()[-1:]}")
    timings = json.loads(run.stdout.strip().splitlines()[-1])
    timings["process_wall_s"] = round(wall, 3)
    return timings


def _float_forward(model, packed, images):
    x = packed.prepare(images)  # the same normalisation as training
    with no_grad():
        return model(Tensor(x)).data


def _median_seconds(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _rates(batch: int, seconds: float) -> dict:
    return {"images_per_s": round(batch / seconds, 1), "latency_ms": round(seconds * 1e3, 3)}
