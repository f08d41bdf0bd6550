"""``numbnn bench model``: images/s and latency of a packed model against the float-simulated model.

Both run in this process on the same uint8 images (normalisation included), at batch 1 and 256:
"warm" is the median of ``repeats`` timed calls after one untimed call; ``packed_cache_runs`` times the largest
batch once more in the runs of :attr:`numbnn.inference.model.PackedModel.cache_batch_size` images (opt-in, see
:mod:`numbnn.inference.runs`). "Cold" runs in a fresh Python
process (:mod:`numbnn.bench.cold_start`) and times loading the model plus its first call, JIT
compilation or Numba's on-disk cache load included: once with the usual cache (warmed first by an
untimed run), once with ``NUMBA_CACHE_DIR`` pointing at an empty directory (everything compiles); the
process's whole wall time, interpreter start and imports included, is reported too.

``binary_layers`` sets each binary node of the packed graph (``bconv``, ``bconv_steps`` and
``bconv_moved_steps`` with their fused per-channel steps, ``bdense``) beside the standalone kernel on the same shape and batch
(:func:`numbnn.kernels.binary_conv2d` or :func:`numbnn.kernels.binary_matmul` on random signs, int32
out: what ``numbnn bench kernels`` times): binary MACs, milliseconds and G binary MAC/s of each, and
the graph's rate as a share of the kernel's (``kernel_ms / graph_ms``).

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
from numbnn import kernels
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
    runs_of = packed.cache_batch_size
    result["packed_cache_runs"] = {"images_per_run": runs_of, f"batch_{max(batches)}": _rates(
        max(batches), _median_seconds(lambda: packed.predict(images, runs_of), repeats))}
    runs = node_timings(packed, images[:max(batches)], repeats)
    result["packed_op_ms"] = op_breakdown(packed, runs)
    progress("binary layers against their kernels")
    result["binary_layers"] = binary_layers(packed, max(batches), runs, repeats)
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


def node_timings(packed, images, repeats: int) -> list[list[float]]:
    """Wall seconds of every node of the packed graph on one batch (one run of all its images), in graph
    order, once per repeat."""
    x = packed.prepare(images)
    runs = []
    for _ in range(repeats):
        runs.append([])
        packed.program.run(x, node_seconds=runs[-1])
    return runs


def op_breakdown(packed, runs: list[list[float]]) -> dict:
    """Median milliseconds per op kind (summed over the graph's nodes of that kind) over ``runs``."""
    kinds = [op.name for op in packed.program.ops]
    sums = [{kind: sum(t for k, t in zip(kinds, run) if k == kind) for kind in kinds} for run in runs]
    return {kind: round(1e3 * float(np.median([run[kind] for run in sums])), 3) for kind in sorted(set(kinds))}


BINARY_OPS = ("bconv", "bconv_steps", "bconv_moved_steps", "bdense")


def binary_layers(packed, batch: int, runs: list[list[float]], repeats: int) -> dict:
    """Each binary node's median time in the graph (``runs``) against the bare kernel on its shape and
    ``batch`` (module docstring)."""
    rng = np.random.default_rng(0)
    layers = []
    for index, (node, op) in enumerate(zip(packed.graph.nodes, packed.program.ops)):
        if node.op not in BINARY_OPS:
            continue
        in_shape = packed.program.specs[node.inputs[0]].shape
        kernel_call, macs, shape = _bare_kernel(op, batch, in_shape, rng)
        graph_s = float(np.median([run[index] for run in runs]))
        kernel_s = _median_seconds(kernel_call, repeats)
        layers.append({"node": index, "op": node.op, "shape": shape, "binary_macs": macs,
                       "graph_ms": round(1e3 * graph_s, 3), "kernel_ms": round(1e3 * kernel_s, 3),
                       "graph_gmacs": round(macs / graph_s / 1e9, 1), "kernel_gmacs": round(macs / kernel_s / 1e9, 1),
                       "share_of_kernel": round(kernel_s / graph_s, 3)})
    total = {key: sum(layer[key] for layer in layers) for key in ("binary_macs", "graph_ms", "kernel_ms")}
    if total["graph_ms"] > 0 and total["kernel_ms"] > 0:
        total["graph_gmacs"] = round(total["binary_macs"] / total["graph_ms"] / 1e6, 1)
        total["kernel_gmacs"] = round(total["binary_macs"] / total["kernel_ms"] / 1e6, 1)
        total["share_of_kernel"] = round(total["kernel_ms"] / total["graph_ms"], 3)
    return {"batch": batch, "total": total, "layers": layers}


def _bare_kernel(op, batch: int, in_shape: tuple, rng):
    """(call of the standalone kernel on ``op``'s shape, binary MACs of the batch, shape label)."""
    if op.name == "bdense":
        out_features, k = op.weight.shape[0], op.in_features
        a = kernels.pack_bits(_signs(rng, (batch, k)))
        return (lambda: kernels.binary_matmul(a, op.weight, k)), batch * out_features * k, f"{batch}x{out_features}x{k}"
    conv = op.conv if op.name in ("bconv_steps", "bconv_moved_steps") else op
    h, w, _ = in_shape
    out_channels, kh, kw, _ = conv.weight.shape
    ho, wo = conv.output_size(h, w)
    x = kernels.pack_activations(_signs(rng, (batch, h, w, conv.in_channels)), conv.groups)
    macs = batch * ho * wo * out_channels * kh * kw * (conv.in_channels // conv.groups)
    label = (f"{batch}x{h}x{w}x{conv.in_channels} -> {out_channels} {kh}x{kw}/{conv.stride[0]}"
             + (f" g{conv.groups}" if conv.groups > 1 else ""))
    return (lambda: kernels.binary_conv2d(x, conv.weight, conv.in_channels, conv.stride, conv.padding, conv.dilation,
                                          conv.pad_value, conv.groups)), macs, label


def _signs(rng, shape) -> np.ndarray:
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)


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
