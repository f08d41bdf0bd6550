"""Peak memory (resident set size) of a ``numbnn train`` run, measured from outside the process.

Usage::

    python3 benchmarks/peak_memory.py [--model bnn-small] [--epochs 1] [--limit 10000] [--threads 2]
                                      [--budget-gib 2] [-- EXTRA TRAIN OPTIONS]

The run is a child process of this script, and nothing else is: ``resource.getrusage(RUSAGE_CHILDREN)``
then reports the largest resident set any waited-for child reached (``ru_maxrss``: KiB on Linux, bytes
on macOS). It includes the Python interpreter, numpy/Numba/h5py, the JIT-compiled or cached kernels,
the FashionMNIST arrays, one batch's activations and gradients, the optimizer state and the
evaluation batches. ``--limit`` only shortens the epoch: the whole dataset is loaded either way and
the batch size decides the activations, so a short run peaks like a full one. The checkpoint goes to
a temporary directory. Prints one line and, last, one JSON object; exits 1 if the peak exceeds
``--budget-gib``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = [sys.executable, "-c", "import sys; from numbnn.cli.main import run; sys.argv[0] = 'numbnn'; run()", "train"]


def peak_rss_bytes() -> int:
    """The largest resident set of any child this process has waited for."""
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak if platform.system() == "Darwin" else peak * 1024


def measure(model: str, epochs: int, limit: int | None, threads: int | None, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        command = [*TRAIN, "--model", model, "--epochs", str(epochs), "--out", str(Path(directory) / "run.h5"), "--json"]
        if limit is not None:
            command += ["--limit", str(limit)]
        if threads is not None:
            command += ["--threads", str(threads)]
        command += extra
        started = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
    if run.returncode != 0:
        sys.exit(f"numbnn train failed ({run.returncode}): {run.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    shown = " ".join(command[command.index("train"):]).replace(str(Path(directory) / "run.h5"), "TMP/run.h5")
    return {"command": f"numbnn {shown}", "peak_rss_bytes": peak_rss_bytes(), "wall_seconds": round(seconds, 1),
            "test_accuracy": summary["test_accuracy"], "epochs": summary["epochs"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bnn-small")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=10_000, help="training images (0: all 60,000)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--budget-gib", type=float, default=2.0)
    parser.add_argument("extra", nargs="*", help="more `numbnn train` options, after --")
    args = parser.parse_args(argv)
    result = measure(args.model, args.epochs, args.limit or None, args.threads, args.extra)
    result["budget_bytes"] = int(args.budget_gib * 2**30)
    result["within_budget"] = result["peak_rss_bytes"] <= result["budget_bytes"]
    print(f"{result['command']}: peak RSS {result['peak_rss_bytes'] / 2**20:,.0f} MiB "
          f"(budget {args.budget_gib:g} GiB), {result['wall_seconds']} s", file=sys.stderr)
    print(json.dumps(result, sort_keys=True))
    return 0 if result["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
