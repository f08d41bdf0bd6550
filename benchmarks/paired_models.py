"""Training steps of several models alternating step by step in one process: each model's step time per
binary MAC over the first model's, from pairs taken a few hundred milliseconds apart.

The training-speed issue asks for FTBNN's and PokeBNN's epoch per binary MAC within 1.5x of ReActNet-A's.
`benchmarks/torch_twin.py --all` gives that ratio from epochs timed minutes apart, in which the machine's
speed drifts: in one run on an AMD EPYC (Zen 4) reactxgb, the same network as reactnet-a in training,
came out at 0.87x reactnet-a's epoch per MAC. Here the models take turns, step for step (the order turned
each round), and each round's ratio of step times counts, so a drift hits both alike; the median and
quartiles of the rounds' ratios are reported, times the reference's binary MACs per image over the model's
(:func:`numbnn.models.cost.summarize`).

    python3 benchmarks/paired_models.py --model reactnet-a --model ftbnn --model pokebnn --rounds 30 --json
"""

import argparse
import json
import statistics
import time

from paired_steps import paired_ratios  # this folder's script

from numbnn.bench.train import TrainStep
from numbnn.kernels.platform import cpu_model
from numbnn.models import build_model
from numbnn.models.cost import summarize
from numbnn.threads import set_threads


def paired_models(models: list[str], batch_size: int, rounds: int, warmup: int = 4) -> list[dict]:
    """Per model: its median step, its binary MACs per image, and the median and quartiles of its per-round
    step over the first model's, scaled to per binary MAC."""
    trainers = {m: TrainStep(m, batch_size, None) for m in models}
    macs = {m: int(summarize(build_model(m)).total.bops) for m in models}
    times = {m: [] for m in models}
    for i in range(warmup):
        for m in models:
            trainers[m].run(i)
    for r in range(rounds):
        for m in (models if r % 2 == 0 else models[::-1]):
            start = time.perf_counter()
            trainers[m].run(warmup + r)
            times[m].append(time.perf_counter() - start)
    reference = models[0]
    rows = []
    for m in models:
        row = {"model": m, "binary_macs_per_image": macs[m], "step_ms": round(statistics.median(times[m]) * 1e3, 1)}
        if macs[m] and macs[reference]:  # a constant factor: the ratios' median and quartiles scale with it
            scale = macs[reference] / macs[m]
            steps = paired_ratios(times[m], times[reference])
            row.update(per_mac_ratio=round(steps["ratio_median"] * scale, 3),
                       per_mac_quartiles=[round(q * scale, 3) for q in steps["ratio_quartiles"]])
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="a registered model (repeatable; the first "
                        "is the reference)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    set_threads(args.threads)
    rows = paired_models(args.model, args.batch_size, args.rounds)
    if args.json:
        print(json.dumps({"cpu_model": cpu_model(), "threads": args.threads, "batch_size": args.batch_size,
                          "rounds": args.rounds, "reference": args.model[0], "rows": rows}))
        return
    for r in rows:
        ratio = (f"per binary MAC {r['per_mac_ratio']:.3f}x {args.model[0]}'s (quartiles "
                 f"{r['per_mac_quartiles'][0]:.3f}-{r['per_mac_quartiles'][1]:.3f})") if "per_mac_ratio" in r else ""
        print(f"{r['model']:12s} step {r['step_ms']:7.1f} ms  {r['binary_macs_per_image'] / 1e6:5.1f}M binary MACs  {ratio}")


if __name__ == "__main__":
    main()
