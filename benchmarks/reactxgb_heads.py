"""ReActXGB's two heads on one trained network: the FC classifier and XGBoost tree heads of several budgets.

    python3 benchmarks/reactxgb_heads.py CHECKPOINT [--threads 2] [--label L] [--heads vector:20:3 scalar:200:10 ...]

CHECKPOINT is a trained ``reactnet-a`` (or ``reactxgb``) run. ReActXGB's stage 1 is ReActNet-A's training
with the same recipe, so a ``numbnn train --model reactnet-a`` checkpoint is a stage-1 network; its
weights go into a ``reactxgb`` model of the same widths, the pooled features of the 60,000 training
images are extracted once (eval mode, no augmentation), and each head ``leaves:trees:max_depth`` is
fitted on them (``vector``: one tree with 10-value leaves per round; ``scalar``: one tree per class per
round, ``trees`` in total). Test accuracy of every head on the 10,000 test images and its size by
``numbnn.models.cost`` go to ``benchmarks/results/reactxgb-heads-<label>.json`` with the CPU model.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import numbnn.io
from numbnn.evaluation import Tally
from numbnn.models import build_model
from numbnn.models.cost import summarize
from numbnn.kernels.platform import cpu_model
from numbnn.train.data import load_split
from numbnn.train.recipes import pooled_features
from numbnn.threads import set_threads

RESULTS = Path(__file__).resolve().parent / "results"


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    tally = Tally()
    tally.add(logits, labels)
    return tally.result().accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--label", default="default")
    parser.add_argument("--heads", nargs="+", default=["vector:20:3", "vector:20:4", "vector:20:6", "scalar:200:10"])
    args = parser.parse_args()
    set_threads(args.threads)
    loaded = numbnn.io.load_checkpoint(args.checkpoint)
    widths = loaded.config.get("args", {}).get("widths")
    train_images, train_labels = load_split("train")
    test_images, test_labels = load_split("test")
    started = time.perf_counter()
    base = build_model("reactxgb", **({"widths": widths} if widths else {}))
    base.load_state_dict(loaded.state)
    train_features = pooled_features(base, train_images)
    test_features = pooled_features(base, test_images)
    fc_logits = base.classifier(numbnn.Tensor(test_features)).data
    rows = [{"head": "fc", "test_accuracy": accuracy(fc_logits, test_labels),
             "size_bytes": summarize(base).total.size_bytes, "feature_seconds": round(time.perf_counter() - started, 1)}]
    for spec in args.heads:
        leaves, trees, depth = spec.split(":")
        model = build_model("reactxgb", **({"widths": widths} if widths else {}), leaves=leaves, trees=int(trees),
                            max_depth=int(depth))
        model.load_state_dict(loaded.state)
        tick = time.perf_counter()
        model.fit_trees(train_features, train_labels, threads=args.threads)
        fit_seconds = time.perf_counter() - tick
        total = summarize(model).total
        rows.append({"head": spec, "leaves": leaves, "trees": len(model.tree_structure()), "max_depth": int(depth),
                     "test_accuracy": accuracy(model.tree_margins(test_features), test_labels),
                     "train_accuracy": accuracy(model.tree_margins(train_features), train_labels),
                     "size_bytes": total.size_bytes, "flops": total.flops, "fit_seconds": round(fit_seconds, 1)})
        print(json.dumps(rows[-1]), flush=True)
    result = {"command": "python3 benchmarks/reactxgb_heads.py " + " ".join(
                  [args.checkpoint, "--threads", str(args.threads), "--label", args.label, "--heads", *args.heads]),
              "checkpoint_model": loaded.config["name"], "cpu_model": cpu_model(), "threads": args.threads,
              "heads": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"reactxgb-heads-{args.label}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
