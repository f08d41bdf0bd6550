"""A packed model's ``predict`` of one batch in runs of several sizes, alternating call by call.

``PackedModel.cache_batch_size`` is the run size whose largest node's maps fit
3/8 of the last-level cache (:mod:`numbnn.inference.runs`). This script measures whether such runs pay: each
size in ``--sizes`` (``auto`` is the model's own) runs on the same ``--images`` images, the sizes alternating
call by call in turned order each round, and per size the median time and the median of the rounds' ratios
against one run of the whole batch are reported. The logits are checked equal for every size. Run it on an
idle machine and beside a busy process: the two answers differ (docs/performance.md, "2026-12-07 (late night ...)").

    python3 benchmarks/run_sizes.py --model reactnet-a --model bnn-small --sizes auto,32,64,128 --rounds 30 --json
"""

import argparse
import functools
import json
import statistics
import time

import numpy as np

from numbnn import inference
from numbnn.inference.runs import last_level_cache_bytes
from numbnn.kernels.platform import cpu_model
from numbnn.models import build_model
from numbnn.threads import set_threads
from numbnn_contender import synthetic_images
from paired_steps import paired_ratios


def run_sizes(model_name: str, images: int, sizes: list, rounds: int, warmup: int = 3) -> dict:
    """Per run size: the median ms of predicting ``images`` images, and the paired ratio against one run."""
    packed = inference.compile(build_model(model_name).eval())
    batch = synthetic_images(images)
    chosen = packed.cache_batch_size
    sizes = sorted({chosen if s == "auto" else int(s) for s in sizes} | {images})
    reference = packed.predict(batch, images)
    for size in sizes:
        if not np.array_equal(packed.predict(batch, size), reference):
            raise SystemExit(f"{model_name}: runs of {size} images changed the logits")
    times = {size: [] for size in sizes}
    for round_ in range(warmup + rounds):
        for size in sizes if round_ % 2 == 0 else sizes[::-1]:
            start = time.perf_counter()
            packed.predict(batch, size)
            if round_ >= warmup:
                times[size].append(time.perf_counter() - start)
    return {"model": model_name, "images": images, "bytes_per_image": packed.program.bytes_per_image,
            "images_per_run": chosen,
            "sizes": [{"images_per_run": size, "predict_ms": round(statistics.median(times[size]) * 1e3, 3),
                       **paired_ratios(times[size], times[images])} for size in sizes]}


def print_table(row: dict) -> None:
    print(f"{row['model']}: {row['bytes_per_image'] / 1e3:.0f} KB per image at most per node, runs of "
          f"{row['images_per_run']} by its cache_batch_size", flush=True)
    for s in row["sizes"]:
        print(f"  runs of {s['images_per_run']:4d}: {s['predict_ms']:8.2f} ms, paired against one run "
              f"{s['ratio_median']:.3f} (quartiles {s['ratio_quartiles'][0]:.3f}-{s['ratio_quartiles'][1]:.3f})",
              flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], help="a registered model, its initial weights "
                        "(repeatable; default reactnet-a)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--images", type=int, default=256, help="images per predict call")
    parser.add_argument("--sizes", default="auto,32,64,128", help="comma-separated run sizes; auto: the model's own")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    set_threads(args.threads)
    measure = functools.partial(run_sizes, images=args.images, sizes=args.sizes.split(","), rounds=args.rounds)
    if not args.json:
        for model in args.model or ["reactnet-a"]:
            print_table(measure(model))
        return
    print(json.dumps({"cpu_model": cpu_model(), "threads": args.threads, "cache_bytes": last_level_cache_bytes(),
                      "rounds": args.rounds, "rows": [measure(model) for model in args.model or ["reactnet-a"]]}))


if __name__ == "__main__":
    main()
