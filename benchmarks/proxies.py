"""Short proxy runs that choose recipes: one epoch on a slice of the training set, every binary model.

    python3 benchmarks/proxies.py --label after [--limit 10000] [--models reactnet-a bnn-small ...]
                                  [--threads 2] [-- extra numbnn train options for every run]

Each run is ``numbnn train --model M --epochs 1 --limit N --json`` (plus the extra options) in a
temporary directory; the script writes ``benchmarks/results/proxies-<label>.json``: per run the
exact command, test accuracy, seconds, the CPU model and the train history's last record (weight
sign flips included). Test accuracy does not depend on machine load (same seed, same threads:
bit-identical runs); the seconds do, so compare them only within one quiet run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BINARY_MODELS = ["reactnet-a", "bnn-small", "ftbnn", "rbnet", "pokebnn"]
RESULTS = Path(__file__).resolve().parent / "results"


def run_one(model: str, limit: int, threads: int, extra: list[str], workdir: Path) -> dict:
    out = workdir / f"{model}.h5"
    command = ["numbnn", "train", "--model", model, "--epochs", "1", "--limit", str(limit), "--threads", str(threads),
               "--out", str(out), "--json", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"model": model, "command": " ".join(command), "error": done.stderr.strip().splitlines()[-1:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"model": model, "command": " ".join(command).replace(str(out), f"runs/{model}.h5"),
            "test_accuracy": result["test_accuracy"], "seconds": round(time.perf_counter() - started, 1),
            "history": result.get("history", [])[-1:]}


def source_state() -> str:
    """The checked-out commit, with " + uncommitted changes" when numbnn/ differs from it."""
    git = ["git", "-C", str(Path(__file__).resolve().parents[1])]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "numbnn"], capture_output=True, text=True).stdout.strip()
    return commit + (" + uncommitted changes" if dirty else "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", required=True, help="names the output file proxies-<label>.json")
    parser.add_argument("--limit", type=int, default=10_000, help="training images (default 10,000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=BINARY_MODELS)
    parser.add_argument("extra", nargs="*", help="options passed to every `numbnn train` (after --)")
    args = parser.parse_args(argv)
    from numbnn.kernels.platform import cpu_model

    commit = source_state()  # before the runs: the code they ran
    runs = []
    with tempfile.TemporaryDirectory() as workdir:
        for model in args.models:
            run = run_one(model, args.limit, args.threads, args.extra, Path(workdir))
            print(json.dumps(run), file=sys.stderr, flush=True)
            runs.append(run)
    report = {"label": args.label, "limit": args.limit, "commit": commit, "cpu_model": cpu_model(), "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"proxies-{args.label}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
