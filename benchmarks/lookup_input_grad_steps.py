"""Training steps with the binary convs' table-lookup input gradient on and off, alternating in one process.

The machine's speed drifts by up to 1.4x within minutes, more than the change measured here, so whole
runs of `numbnn bench train` before and after cannot resolve it. Here one training step (the model's
recipe, batch of FashionMNIST-shaped data, as `numbnn bench train`) runs with
``functional.binary.LOOKUP_INPUT_GRAD_MIN_OUTPUTS`` at its value (on: :mod:`numbnn.kernels.sign_conv_input_grad`
where it applies) and at infinity (off: the register-tiled kernel or BLAS + col2im, as before), the two
alternating step by step; each pair's ratio on/off is taken and the median reported.

    python3 benchmarks/lookup_input_grad_steps.py --model reactnet-a --model bnn-small --pairs 30 --json
"""

import argparse
import json
import statistics
import time

from numbnn.bench.train import TrainStep
from numbnn.functional import binary
from numbnn.kernels.platform import cpu_model
from numbnn.threads import set_threads

OFF = 1 << 40  # no conv has this many outputs per group


def paired_steps(model: str, batch_size: int, pairs: int, warmup: int = 6) -> dict:
    """Median step seconds with the lookup on and off, and the median and quartiles of the paired ratios."""
    trainer = TrainStep(model, batch_size, None)
    on_value = binary.LOOKUP_INPUT_GRAD_MIN_OUTPUTS
    times = {"on": [], "off": []}
    try:
        for step in range(warmup):  # compiles both paths
            binary.LOOKUP_INPUT_GRAD_MIN_OUTPUTS = on_value if step % 2 else OFF
            trainer.run(step)
        for pair in range(pairs):
            order = ("on", "off") if pair % 2 == 0 else ("off", "on")
            for name in order:
                binary.LOOKUP_INPUT_GRAD_MIN_OUTPUTS = on_value if name == "on" else OFF
                start = time.perf_counter()
                trainer.run(warmup + pair)
                times[name].append(time.perf_counter() - start)
    finally:
        binary.LOOKUP_INPUT_GRAD_MIN_OUTPUTS = on_value
    ratios = sorted(a / b for a, b in zip(times["on"], times["off"]))
    quartiles = statistics.quantiles(ratios, n=4)
    return {"model": model, "batch_size": batch_size, "pairs": pairs,
            "step_ms_on": round(statistics.median(times["on"]) * 1e3, 1),
            "step_ms_off": round(statistics.median(times["off"]) * 1e3, 1),
            "ratio_median": round(statistics.median(ratios), 3),
            "ratio_quartiles": [round(quartiles[0], 3), round(quartiles[2], 3)]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="a registered model (repeatable; default reactnet-a)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    set_threads(args.threads)
    rows = []
    for model in args.model or ["reactnet-a"]:
        rows.append(paired_steps(model, args.batch_size, args.pairs))
        if not args.json:
            r = rows[-1]
            print(f"{model:12s} batch {r['batch_size']}: on {r['step_ms_on']:7.1f} ms  off {r['step_ms_off']:7.1f} ms  "
                  f"paired on/off {r['ratio_median']:.3f} (quartiles {r['ratio_quartiles'][0]:.3f}-"
                  f"{r['ratio_quartiles'][1]:.3f})", flush=True)
    if args.json:
        print(json.dumps({"cpu_model": cpu_model(), "threads": args.threads, "rows": rows}))


if __name__ == "__main__":
    main()
