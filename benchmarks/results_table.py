"""The README's results table: accuracy and training time of recorded runs next to their cost and the papers.

Usage::

    python3 benchmarks/results_table.py RUNS_DIR [RUNS_DIR ...] [--out results.md]

RUNS_DIR holds one JSON file per training run (``benchmarks/run_zoo.sh`` writes them). A run file is
the object ``numbnn train --json`` prints, plus the command that produced it::

    {"model": "reactnet-a", "test_accuracy": 0.9213, "epochs": 20, "seconds": 1130.4,
     "checkpoint": "runs/zoo/reactnet-a.h5",
     "command": "numbnn train --model reactnet-a --threads 2 --out runs/zoo/reactnet-a.h5 --json"}

``minutes`` may be given instead of ``seconds``.

RUNS_DIR may instead be a sweep's results directory (``numbnn sweep SPEC --out RUNS_DIR``): each run's
``metrics.json`` becomes a row named by its label, with the ``numbnn train`` command that trains the same
configuration alone (the sweep ran it on one thread while the other worker used the second core). The cost columns come from
:func:`numbnn.models.cost.summarize` on the run's checkpoint; if the checkpoint is gone they come from
the registered model's default configuration and are marked with a dagger. The papers' FashionMNIST
figures (:data:`PAPER_ROWS`, each with its source) follow as rows of their own; their cost columns are empty because none of
them was reported for this input size in this cost model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from numbnn.formatting import byte_size, count

# (model, test accuracy as reported, params if reported, source).
PAPER_ROWS = (
    ("ReActNet-A, as trained by the ReActXGB paper", "88.91%", "",
     "derived: 90.38% (below) - 1.47 pts (arXiv 2405.08020 abstract)"),
    ("ReActXGB", "90.38%", "", "sciencestack.ai/paper/2405.08020 summary of arXiv 2405.08020 (Chu & Chen)"),
    ("CBCNN", "92.86%", "0.48M", "Hindawi Mob. Inf. Syst. 2023, art. 5870630, Table 2"),
    ("OneBNet (ResNet-18 based)", "93.4%", "", "OpenReview 6fFd8QaPVx (ICLR 2024 submission)"),
)
COLUMNS = ("model", "test acc.", "epochs", "train min", "params (binary)", "size", "BOPs", "FLOPs",
           "OPs", "ACE", "command / source")
REQUIRED = ("model", "test_accuracy", "epochs", "command")


class RunFileError(ValueError):
    """A run file is missing, unreadable or lacks a field; the message names the file."""


def load_runs(directory: Path) -> list[dict]:
    """Every ``*.json`` run in ``directory``, sorted by model name then file name (a sweep: spec order)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RunFileError(f"{directory}: not a directory")
    if (directory / "sweep.json").is_file():
        return load_sweep_runs(directory)
    runs = []
    for path in sorted(directory.glob("*.json")):
        try:
            run = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise RunFileError(f"{path}: not a JSON run file ({error})") from None
        missing = [key for key in REQUIRED if not isinstance(run, dict) or key not in run]
        if missing or ("seconds" not in run and "minutes" not in run):
            raise RunFileError(f"{path}: missing {', '.join(missing) or 'seconds (or minutes)'}")
        runs.append({**run, "_file": str(path)})
    if not runs:
        raise RunFileError(f"{directory}: no *.json run files")
    return sorted(runs, key=lambda run: (run["model"], run["_file"]))


def load_sweep_runs(directory: Path) -> list[dict]:
    """The finished runs of a sweep directory, in the spec's order, as run dicts (minutes: the runs' epochs)."""
    try:
        listed = json.loads((directory / "sweep.json").read_text())["runs"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise RunFileError(f"{directory / 'sweep.json'}: not a sweep listing ({error})") from None
    runs = []
    for entry in listed:
        path = directory / entry["key"] / "metrics.json"
        if not path.is_file():
            continue  # failed or not yet run: the sweep's own report lists those
        try:
            metrics = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise RunFileError(f"{path}: not a metrics file ({error})") from None
        config = metrics["config"]
        accuracy = metrics["test_accuracy"]
        if "fc_test_accuracy" in metrics:  # ReActXGB: the FC head's accuracy beside the trees'
            accuracy_note = f" (FC head {100 * metrics['fc_test_accuracy']:.2f}%)"
        else:
            accuracy_note = ""
        runs.append({
            "model": metrics.get("label") or config["model"], "test_accuracy": accuracy, "accuracy_note": accuracy_note,
            "epochs": metrics["epochs"], "seconds": metrics.get("train_seconds") or metrics["seconds"],
            "checkpoint": str(directory / entry["key"] / metrics.get("checkpoint", "checkpoint.h5")),
            "command": train_command(config, threads=1), "_file": str(path),
            "registry_model": config["model"], "model_args": config.get("model_args", {}),
        })
    if not runs:
        raise RunFileError(f"{directory}: no finished runs (no <key>/metrics.json)")
    return runs


def train_command(config: dict, threads: int) -> str:
    """The ``numbnn train`` command line that trains a sweep run's configuration on its own."""
    import inspect

    from numbnn.models import model_spec
    from numbnn.train.config import make_config

    name = config["model"]
    parts = ["numbnn train", f"--model {name}"]
    defaults = make_config(name).to_dict()
    for key, value in sorted(config["train"].items()):
        if value != defaults.get(key):
            parts.append(f"--{key.replace('_', '-')} {value}")
    signature = inspect.signature(model_spec(name).constructor)
    for key, value in sorted(config.get("model_args", {}).items()):
        parameter = signature.parameters.get(key)
        default = None if parameter is None else parameter.default
        if isinstance(default, tuple):
            default = list(default)
        if value != default:
            parts.append(f"--model-arg {key}={json.dumps(value).replace(' ', '')}")
    return " ".join(parts + [f"--threads {threads}"])


def run_cost(run: dict):
    """(CostReport, from_checkpoint) for a run: its checkpoint's model, else the run's configuration
    (a sweep run's ``registry_model`` and ``model_args``; a run file's model with default arguments)
    rebuilt untrained."""
    import numbnn.io
    from numbnn.models import build_model
    from numbnn.models.cost import default_input_shape, summarize

    checkpoint = Path(run.get("checkpoint") or "")
    if checkpoint.is_file():
        model, from_checkpoint = numbnn.io.load(checkpoint), True
    else:
        model = build_model(run.get("registry_model", run["model"]), **run.get("model_args", {}))
        from_checkpoint = False
    return summarize(model, default_input_shape(model)), from_checkpoint


def markdown_table(runs: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    daggers = False
    for run in runs:
        report, from_checkpoint = run_cost(run)
        daggers |= not from_checkpoint
        total = report.total
        minutes = run["minutes"] if "minutes" in run else run["seconds"] / 60
        cells = [
            run["model"] + ("" if from_checkpoint else " \u2020"),
            f"{100 * run['test_accuracy']:.2f}%" + run.get("accuracy_note", ""),
            str(run["epochs"]),
            f"{minutes:.1f}",
            f"{count(total.params)} ({count(total.binary_params)})",
            byte_size(total.size_bytes),
            count(total.bops),
            count(total.flops),
            count(total.ops),
            count(total.ace),
            f"`{run['command']}`",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for name, accuracy, params, source in PAPER_ROWS:
        cells = [f"{name} (paper)", accuracy, "", "", params] + [""] * (len(COLUMNS) - 6) + [source]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "",
        "Costs per 28x28 image (`numbnn summary`): BOPs = 1-bit x 1-bit MACs, FLOPs = other MACs, "
        "OPs = BOPs/64 + FLOPs, ACE = sum over MACs of weight bits x activation bits (a float operand at 16 bits); "
        "size with binary weights at 1 bit and real parameters at 32 bits.",
    ]
    if daggers:
        notes.append("\u2020 checkpoint not found: costs of the run's configuration rebuilt untrained (a trained "
                     "ReActXGB's tree comparisons are then missing, its float classifier counted instead).")
    return "\n".join(lines + notes) + "\n"




def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dirs", type=Path, nargs="+", metavar="runs_dir",
                        help="directory of run JSON files (see benchmarks/run_zoo.sh) or a sweep's --out directory;"
                             " several are listed one after the other")
    parser.add_argument("--out", type=Path, help="also write the table to this file (atomically)")
    args = parser.parse_args(argv)
    from numbnn._atomic import atomic_path
    from numbnn.errors import NumbnnError

    try:
        table = markdown_table([run for directory in args.runs_dirs for run in load_runs(directory)])
    except (RunFileError, NumbnnError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(table)
    if args.out is not None:
        with atomic_path(args.out) as tmp:
            tmp.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
