"""numbnn side of the training-step comparison with ``benchmarks/torch_train_reactnet.py``, plus a profile.

Times ``--steps`` training steps of ``reactnet-a`` (numbnn's default architecture and recipe) at the
given batch size and thread count after a cold first step and ``--warmup`` more, on the same kind of
FashionMNIST-shaped data as the PyTorch script (see :mod:`numbnn.train.bench`), then profiles
``--profile-steps`` more with cProfile (top functions by own time, top autograd ops by time including
callees). With ``--torch-json FILE`` (the PyTorch script's output) it adds the epoch-time ratios.
Prints one JSON object.

    python benchmarks/train_step.py --threads 2 --batch-size 128 --steps 20
    python benchmarks/torch_train_reactnet.py --threads 2 --batch-size 128 --steps 20 > torch.json
    python benchmarks/train_step.py --threads 2 --torch-json torch.json
"""

import argparse
import json

from numbnn.models.reactnet import DEFAULT_WIDTHS
from numbnn.train.bench import profile_train_step, time_train_steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--width-multiplier", type=float, default=1.0)
    parser.add_argument("--profile-steps", type=int, default=3, help="steps profiled with cProfile (0: no profile)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="profile clock (cpu is exact with 1 thread)")
    parser.add_argument("--top", type=int, default=15, help="rows of each profile table")
    parser.add_argument("--torch-json", help="output of torch_train_reactnet.py: report numbnn/torch epoch-time ratios")
    args = parser.parse_args()

    model_args = {}
    if args.width_multiplier != 1.0:
        model_args["widths"] = [max(1, round(w * args.width_multiplier)) for w in DEFAULT_WIDTHS]
    result = {"timing": time_train_steps("reactnet-a", args.batch_size, args.steps, args.warmup, args.threads, model_args)}
    if args.profile_steps:
        result["profile"] = profile_train_step("reactnet-a", args.batch_size, args.profile_steps, 1, args.threads,
                                               model_args, clock=args.clock, top=args.top)
    if args.torch_json:
        with open(args.torch_json) as file:
            torch_result = json.load(file)
        result["torch"] = torch_result
        result["comparison"] = compare(result["timing"], torch_result)
    print(json.dumps(result))


def compare(numbnn_timing: dict, torch_result: dict) -> dict:
    """Epoch-time ratios torch / numbnn (> 1: numbnn faster) against every torch configuration timed."""
    rows = []
    for run in torch_result["runs"]:
        rows.append({
            "torch_config": f"{run['memory_format']}{' compiled' if run['compiled'] else ''}",
            "torch_epoch_s": run["epoch_s"],
            "numbnn_epoch_s": numbnn_timing["epoch_s"],
            "speedup_wall": round(run["step_s"] / numbnn_timing["step_s"], 2),
            "speedup_cpu": round(run["step_cpu_s"] / numbnn_timing["step_cpu_s"], 2),
        })
    return {"batch_size_match": torch_result["batch_size"] == numbnn_timing["batch_size"], "rows": rows}


if __name__ == "__main__":
    main()
