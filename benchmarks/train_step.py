"""numbnn's training step for one model, plus a profile (the PyTorch comparison is ``benchmarks/torch_twin.py``).

Times ``--steps`` training steps of ``--model`` (default ``reactnet-a``; its registered recipe) at the
given batch size and thread count after a cold first step and ``--warmup`` more, on FashionMNIST-shaped
data (see :mod:`numbnn.bench.train`), then profiles ``--profile-steps`` more with cProfile (top functions
by own time, top autograd ops by time including callees). Prints one JSON object.

For numbnn against PyTorch, ``benchmarks/torch_twin.py`` builds the PyTorch twin of any registered model,
checks both compute the same logits, and alternates training steps of both in one process.

    python benchmarks/train_step.py --threads 2 --batch-size 128 --steps 20
    python benchmarks/train_step.py --model ftbnn --threads 1 --profile-steps 3 --clock cpu
"""

import argparse
import json

from numbnn.bench.train import profile_train_step, time_train_steps
from numbnn.models.reactnet import DEFAULT_WIDTHS


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="reactnet-a")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--width-multiplier", type=float, default=1.0, help="reactnet-a only: widths x this")
    parser.add_argument("--profile-steps", type=int, default=3, help="steps profiled with cProfile (0: no profile)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="profile clock (cpu is exact with 1 thread)")
    parser.add_argument("--top", type=int, default=15, help="rows of each profile table")
    args = parser.parse_args()

    model_args = {}
    if args.width_multiplier != 1.0:
        if args.model != "reactnet-a":
            parser.error("--width-multiplier applies to reactnet-a only")
        model_args["widths"] = [max(1, round(w * args.width_multiplier)) for w in DEFAULT_WIDTHS]
    result = {"numbnn": time_train_steps(args.model, args.batch_size, args.steps, args.warmup, args.threads, model_args)}
    if args.profile_steps:
        result["profile"] = profile_train_step(args.model, args.batch_size, args.profile_steps, 1, args.threads,
                                               model_args, clock=args.clock, top=args.top)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
