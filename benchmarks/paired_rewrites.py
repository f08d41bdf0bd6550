"""A packed model compiled with one graph rewrite and without it, ``predict`` alternating call by call.

The machine's speed drifts by more than most rewrites change a batch, so two runs of `numbnn bench model`
cannot resolve them. Here the model is compiled twice, with the rewrite (``--rewrite``) and with it
replaced by a no-op, the two logits are checked equal, and ``predict`` runs on each in turn (each pair in
turned order); the median of the paired ratios with / without is reported per batch size. Rewrites:

- ``squeeze-excite``: :func:`numbnn.inference.fuse.gates.fuse_squeeze_excite_gates` (a squeeze-and-excitation
  gate as one node);
- ``averaged-inputs``: :func:`numbnn.inference.fuse.steps.averaged_inputs_as_other` (a residual of channel-group
  means read from the ungrouped value by the step that adds it);
- ``pools``: :func:`numbnn.inference.fuse.convs.fuse_pools_into_conv_steps` (a 2x2 average pool done by the
  fused conv whose output it pools);
- ``stem-steps``: :func:`numbnn.inference.fuse.convs.fuse_steps_into_stems` (a 1-channel 3x3 stem conv and its batch
  norm as one kernel);
- ``moved-steps``: :func:`numbnn.inference.fuse.convs.fuse_moved_steps_into_conv_steps` (RB-Net's depth-to-space and
  the unit's batch norm, residual and RPReLU done by the fused conv);
- ``moved-packs``: :func:`numbnn.inference.fuse.convs.fuse_gather_packs_into_moved_steps` (the next unit's
  space-to-depth and signs packed by that conv from its registers);
- ``unread-maps``: not a graph rewrite but the program's :meth:`numbnn.inference.ops.Op.drop_outputs` (a fused
  conv whose float map no node reads, a pooled downsampling shortcut's, keeps it in per-block scratch);
  without it every op writes every output.

    python3 benchmarks/paired_rewrites.py --rewrite squeeze-excite --model pokebnn --batch-sizes 1,256 --json
"""

import argparse
import json
import statistics
import time

import numpy as np

from numbnn import inference
from numbnn.inference import fuse
from numbnn.kernels.platform import cpu_model
from numbnn.models import build_model
from numbnn.threads import set_threads
from numbnn_contender import synthetic_images
from paired_steps import paired_ratios

REWRITES = {"squeeze-excite": "fuse_squeeze_excite_gates", "averaged-inputs": "averaged_inputs_as_other",
            "pools": "fuse_pools_into_conv_steps", "stem-steps": "fuse_steps_into_stems", "moved-steps": "fuse_moved_steps_into_conv_steps",
            "moved-packs": "fuse_gather_packs_into_moved_steps",
            "unread-maps": None}


def compiled_pair(model_name: str, rewrite: str):
    """(with, without): the model (its initial weights) compiled with the rewrite and with it skipped."""
    model = build_model(model_name).eval()
    name = REWRITES[rewrite]
    with_rewrite = inference.compile(model)
    if name is None:  # unread-maps: every op told that all its outputs are read
        without = inference.compile(model)
        for op in without.program.ops:
            op.drop_outputs(set())
        return with_rewrite, without
    kept = getattr(fuse, name)
    setattr(fuse, name, lambda graph: None)  # optimize() looks the rewrite up in the package at each call
    try:
        without = inference.compile(model)
    finally:
        setattr(fuse, name, kept)
    return with_rewrite, without


def paired_predicts(with_rewrite, without, batch_size: int, pairs: int, warmup: int = 5) -> dict:
    images = synthetic_images(batch_size)
    if not np.array_equal(with_rewrite.predict(images), without.predict(images)):
        raise SystemExit("the rewrite changed the logits")
    times = {"with": [], "without": []}
    for _ in range(warmup):
        with_rewrite.predict(images)
        without.predict(images)
    for pair in range(pairs):
        order = (("with", with_rewrite), ("without", without))
        for name, net in order if pair % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            net.predict(images)
            times[name].append(time.perf_counter() - start)
    return {"batch_size": batch_size, "pairs": pairs, "nodes_with": len(with_rewrite.graph.nodes),
            "nodes_without": len(without.graph.nodes),
            "predict_ms_with": round(statistics.median(times["with"]) * 1e3, 3),
            "predict_ms_without": round(statistics.median(times["without"]) * 1e3, 3),
            **paired_ratios(times["with"], times["without"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rewrite", choices=sorted(REWRITES), required=True)
    parser.add_argument("--model", default="pokebnn", help="a registered model (its initial weights)")
    parser.add_argument("--batch-sizes", default="1,256", help="comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=None,
                        help="pairs per batch size (default: 400 at batch 1, 30 above; more resolve smaller changes)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    set_threads(args.threads)
    with_rewrite, without = compiled_pair(args.model, args.rewrite)
    rows = []
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        pairs = args.pairs or (400 if batch_size == 1 else 30)
        rows.append(paired_predicts(with_rewrite, without, batch_size, pairs))
        if not args.json:
            r = rows[-1]
            print(f"{args.model} batch {batch_size}: {r['nodes_with']} nodes {r['predict_ms_with']:.3f} ms with, "
                  f"{r['nodes_without']} nodes {r['predict_ms_without']:.3f} ms without, paired {r['ratio_median']:.3f} "
                  f"(quartiles {r['ratio_quartiles'][0]:.3f}-{r['ratio_quartiles'][1]:.3f})", flush=True)
    if args.json:
        print(json.dumps({"cpu_model": cpu_model(), "threads": args.threads, "model": args.model,
                          "rewrite": args.rewrite, "rows": rows}))


if __name__ == "__main__":
    main()
