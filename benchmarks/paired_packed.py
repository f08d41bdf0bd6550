"""A packed model compiled with and without one of the compiler's rewrites, predicting in turn in one process:
the median and quartiles of the paired ratios (with / without) of their batch times.

On a machine whose speed drifts within minutes, and where the same packed model's batch time varies by up to
a quarter from one process to the next, timings of the two versions in separate runs do not show a change of
a few percent; here both graphs run in the same process on the same images, alternating call by call (the
order turned each round). The logits of the two must be the same bits, or the script stops.

    python3 benchmarks/paired_packed.py CKPT --without fuse_pools_into_conv_steps --batch-size 256 --json
"""

import argparse
import json
import time

import numpy as np
from paired_steps import paired_ratios  # this folder's script

import numbnn.inference.fuse as fuse
import numbnn.io
from numbnn.inference.compiler import compile
from numbnn.kernels.platform import cpu_model
from numbnn.threads import set_threads

REWRITES = sorted(name for name in dir(fuse) if name.startswith(("fuse_", "fold_", "merge_", "share_")))


def compiled_without(model, rewrite: str):
    """The packed model with ``rewrite`` (a function of :mod:`numbnn.inference.fuse`) skipped."""
    real = getattr(fuse, rewrite)
    setattr(fuse, rewrite, lambda graph: None)
    try:
        return compile(model)
    finally:
        setattr(fuse, rewrite, real)


def paired_packed(checkpoint: str, rewrite: str, batch_size: int, rounds: int, warmup: int = 5) -> dict:
    model = numbnn.io.load(checkpoint)
    model.eval()
    with_it, without = compile(model), compiled_without(model, rewrite)
    images = np.random.default_rng(0).integers(0, 256, (batch_size, *with_it.input_shape[:2]), dtype=np.uint8)
    if not np.array_equal(with_it.predict(images).view(np.int32), without.predict(images).view(np.int32)):
        raise SystemExit(f"{checkpoint}: the logits with and without {rewrite} differ")
    times = {"with": [], "without": []}
    for r in range(warmup + rounds):
        for name, packed in (("with", with_it), ("without", without))[:: 1 if r % 2 else -1]:
            start = time.perf_counter()
            packed.predict(images)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return {"checkpoint": checkpoint, "model": with_it.meta["config"]["name"], "without": rewrite,
            "batch_size": batch_size, "nodes_with": len(with_it.graph.nodes), "nodes_without": len(without.graph.nodes),
            "with_ms": round(float(np.median(times["with"])) * 1e3, 3),
            "without_ms": round(float(np.median(times["without"])) * 1e3, 3),
            **paired_ratios(times["with"], times["without"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoints written by `numbnn train`")
    parser.add_argument("--without", choices=REWRITES, required=True, help="the rewrite skipped in the second graph")
    parser.add_argument("--batch-size", type=int, action="append", help="images per call (repeatable; default 256)")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    set_threads(args.threads)
    rows = [paired_packed(c, args.without, b, args.rounds) for c in args.checkpoints for b in args.batch_size or [256]]
    if args.json:
        print(json.dumps({"cpu_model": cpu_model(), "threads": args.threads, "rounds": args.rounds, "rows": rows}))
        return
    for r in rows:
        print(f"{r['model']:12s} batch {r['batch_size']:4d}: {r['with_ms']:8.3f} ms with, {r['without_ms']:8.3f} ms without "
              f"{r['without']}: paired ratio {r['ratio_median']:.3f} (quartiles {r['ratio_quartiles'][0]:.3f}-"
              f"{r['ratio_quartiles'][1]:.3f})")


if __name__ == "__main__":
    main()
