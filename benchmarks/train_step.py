"""numbnn side of the training-step comparison with ``benchmarks/torch_train_reactnet.py``, plus a profile.

Times ``--steps`` training steps of ``reactnet-a`` (numbnn's default architecture and recipe) at the
given batch size and thread count after a cold first step and ``--warmup`` more, on the same kind of
FashionMNIST-shaped data as the PyTorch script (see :mod:`numbnn.train.bench`), then profiles
``--profile-steps`` more with cProfile (top functions by own time, top autograd ops by time including
callees). With ``--torch``, each of ``--rounds`` rounds times numbnn and then runs the PyTorch script
(same batch size, threads and steps; extra options with ``--torch-args``) in a subprocess, so the two
alternate on a shared machine; the epoch-time ratios use the medians over rounds. ``--interleaved``
instead runs both in this process and alternates single steps (numbnn, torch channels_last, torch
NCHW, numbnn, ...), so a change in machine load hits every framework alike: the most robust ratio on
a shared machine. Prints one JSON object.

    python benchmarks/train_step.py --threads 2 --batch-size 128 --steps 20 --interleaved
    python benchmarks/train_step.py --threads 2 --batch-size 128 --steps 20 --torch --rounds 3
    python benchmarks/train_step.py --threads 1 --profile-steps 3 --clock cpu
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys

from numbnn.models.reactnet import DEFAULT_WIDTHS
from numbnn.train.bench import profile_train_step, time_train_steps

TORCH_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_train_reactnet.py")


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
    parser.add_argument("--torch", action="store_true", help="also run the PyTorch reference, alternating with numbnn")
    parser.add_argument("--rounds", type=int, default=1, help="numbnn/torch rounds (medians over rounds)")
    parser.add_argument("--torch-args", default="", help="extra options for torch_train_reactnet.py, e.g. '--compile'")
    parser.add_argument("--interleaved", action="store_true", help="numbnn and torch in this process, alternating steps")
    args = parser.parse_args()
    if args.interleaved:
        print(json.dumps(interleaved(args)))
        return

    model_args = {}
    if args.width_multiplier != 1.0:
        model_args["widths"] = [max(1, round(w * args.width_multiplier)) for w in DEFAULT_WIDTHS]
    rounds = []
    for _ in range(args.rounds):
        entry = {"numbnn": time_train_steps("reactnet-a", args.batch_size, args.steps, args.warmup, args.threads, model_args)}
        if args.torch:
            entry["torch"] = run_torch(args)
        rounds.append(entry)
    result = {"rounds": rounds, "numbnn_epoch_s": statistics.median(r["numbnn"]["epoch_s"] for r in rounds)}
    if args.torch:
        result["comparison"] = compare(rounds)
    if args.profile_steps:
        result["profile"] = profile_train_step("reactnet-a", args.batch_size, args.profile_steps, 1, args.threads,
                                               model_args, clock=args.clock, top=args.top)
    print(json.dumps(result))


def interleaved(args) -> dict:
    """Alternate single training steps of numbnn and of each eager torch configuration in one process."""
    import importlib.util
    import time

    import numbnn.train.bench as bench
    from numbnn.train.threads import set_threads

    spec = importlib.util.spec_from_file_location("torch_train_reactnet", TORCH_SCRIPT)
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    torch = reference.torch
    set_threads(args.threads)
    torch.set_num_threads(args.threads)
    widths = [max(1, round(w * args.width_multiplier)) for w in DEFAULT_WIDTHS]
    trainer = bench.TrainStep("reactnet-a", args.batch_size, {"widths": widths})
    steps = {"numbnn": trainer.run}
    for memory_format in (torch.channels_last, torch.contiguous_format):
        steps[f"torch {reference.config_name(memory_format, False)}"] = reference.make_step(
            memory_format, False, args.batch_size, trainer.config.lr, trainer.config.weight_decay, widths)
    load_before = os.getloadavg()[0]
    walls = {name: [] for name in steps}
    cpus = {name: [] for name in steps}
    for i in range(args.warmup + 1 + args.steps):
        for name, step in steps.items():
            wall, cpu = time.perf_counter(), time.process_time()
            step(i)
            if i > args.warmup:
                walls[name].append(time.perf_counter() - wall)
                cpus[name].append(time.process_time() - cpu)
    epoch = {name: statistics.median(w) * bench.EPOCH_IMAGES / args.batch_size for name, w in walls.items()}
    return {
        "batch_size": args.batch_size, "threads": args.threads, "steps": args.steps, "widths": widths,
        "torch": torch.__version__,
        "step_s": {name: round(statistics.median(w), 5) for name, w in walls.items()},
        "step_cpu_s": {name: round(statistics.median(c), 5) for name, c in cpus.items()},
        "epoch_s": {name: round(e, 1) for name, e in epoch.items()},
        "speedup_vs_numbnn": {name: round(e / epoch["numbnn"], 2) for name, e in epoch.items() if name != "numbnn"},
        "speedup_cpu_vs_numbnn": {name: round(statistics.median(c) / statistics.median(cpus["numbnn"]), 2)
                                  for name, c in cpus.items() if name != "numbnn"},
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def run_torch(args) -> dict:
    command = [sys.executable, TORCH_SCRIPT, "--batch-size", str(args.batch_size), "--threads", str(args.threads),
               "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--width-multiplier", str(args.width_multiplier), *shlex.split(args.torch_args)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(rounds: list) -> dict:
    """Per torch configuration: median epoch seconds over rounds and the speed-up torch / numbnn (> 1: numbnn faster)."""
    numbnn_wall = statistics.median(r["numbnn"]["step_s"] for r in rounds)
    numbnn_cpu = statistics.median(r["numbnn"]["step_cpu_s"] for r in rounds)
    configs = {}
    for r in rounds:
        for run in r["torch"]["runs"]:
            configs.setdefault(f"{run['memory_format']}{' compiled' if run['compiled'] else ''}", []).append(run)
    rows = []
    for name, runs in configs.items():
        torch_wall = statistics.median(run["step_s"] for run in runs)
        rows.append({
            "torch_config": name,
            "torch_epoch_s": statistics.median(run["epoch_s"] for run in runs),
            "numbnn_epoch_s": statistics.median(r["numbnn"]["epoch_s"] for r in rounds),
            "speedup_wall": round(torch_wall / numbnn_wall, 2),
            "speedup_cpu": round(statistics.median(run["step_cpu_s"] for run in runs) / numbnn_cpu, 2),
        })
    return {"rounds": len(rounds), "rows": rows,
            "load_average_1min": [r["numbnn"]["load_average_1min"] for r in rounds]}


if __name__ == "__main__":
    main()
