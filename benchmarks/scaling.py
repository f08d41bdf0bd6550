"""How cost grows with the work: time vs batch size, thread count (1 vs 2) and, for the kernel, width.

Two measurements (batch 1, 32, 128, 256; 1 and 2 threads):

- ``binary_conv2d`` on a representative layer of ``reactnet-a``: block 3's binary 3x3 conv, 7x7x128 ->
  128, stride 1, padding 1, channels scaled by the width multiplier (x0.5, x1, x2), on packed inputs,
  with the packing of the activations timed separately;
- a full training step (forward, loss, backward, optimizer; the model's registered recipe) of every
  zoo model (``--models``, default all registered ones), on FashionMNIST-shaped data (see
  :mod:`numbnn.bench.train`).

Every figure is the median of ``--repeats`` timed calls after warm-up, wall clock and process CPU
time (all threads), all in one process. The 1-minute load average before and after each section is
recorded: on a shared machine wall times are only comparable at a load below the core count.
Writes a Markdown table and one JSON object (``--json-out``/``--md-out``; the JSON is also the last
stdout line).

    python benchmarks/scaling.py --repeats 5 --md-out scaling.md --json-out scaling.json
    python benchmarks/scaling.py --sections train --models ftbnn,pokebnn --batches 32,128 --repeats 3
"""

import argparse
import json
import os
import statistics
import time

import numbnn  # noqa: F401  (before numpy: numbnn sets OpenBLAS's idle-thread timeout)
import numba
import numpy as np
from numbnn.bench.train import TrainStep
from numbnn.kernels import binary_conv2d, pack_activations, pack_conv_weight
from numbnn.kernels.platform import cpu_model
from numbnn.models import available_models
from numbnn.threads import set_threads

BATCHES = (1, 32, 128, 256)
WIDTHS = (0.5, 1.0, 2.0)
THREADS = (1, 2)
LAYER = dict(size=7, channels=128, kernel=3, stride=1, padding=1)  # reactnet-a block 3, 3x3 binary conv


def _timed(call, repeats: int, warmup: int = 1) -> dict:
    for _ in range(warmup):
        call()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus)}


def kernel_row(batch: int, width: float, threads: int, repeats: int, rng) -> dict:
    channels = max(1, round(LAYER["channels"] * width))
    size, k = LAYER["size"], LAYER["kernel"]
    x = rng.standard_normal((batch, size, size, channels), dtype=np.float32)
    w = rng.standard_normal((channels, k, k, channels), dtype=np.float32)
    xp, wp = pack_activations(x), pack_conv_weight(w)
    conv = _timed(lambda: binary_conv2d(xp, wp, channels, stride=LAYER["stride"], padding=LAYER["padding"]), repeats, 2)
    pack = _timed(lambda: pack_activations(x), repeats, 2)
    macs = batch * size * size * channels * k * k * channels  # stride 1, same padding: Ho = Wo = size
    return {
        "batch": batch, "width": width, "threads": threads, "channels": channels, "macs": macs,
        "conv_ms": round(conv["wall_s"] * 1e3, 3), "conv_cpu_ms": round(conv["cpu_s"] * 1e3, 3),
        "pack_ms": round(pack["wall_s"] * 1e3, 3),
        "binary_gmacs": round(macs / conv["wall_s"] / 1e9, 1),
    }


def train_row(model: str, batch: int, threads: int, repeats: int) -> dict:
    trainer = TrainStep(model, batch)
    step = iter(range(10**9))
    timing = _timed(lambda: trainer.run(next(step)), repeats, warmup=3)
    return {
        "model": model, "batch": batch, "threads": threads,
        "step_ms": round(timing["wall_s"] * 1e3, 2), "step_cpu_ms": round(timing["cpu_s"] * 1e3, 2),
        "images_per_s": round(batch / timing["wall_s"], 1),
        "epoch_s": round(timing["wall_s"] * 60000 / batch, 1),
    }


def run(batches, widths, threads_list, repeats: int, sections, models) -> dict:
    rng = np.random.default_rng(0)
    result = {"repeats": repeats, "machine_threads": numba.config.NUMBA_NUM_THREADS, "cpu_model": cpu_model()}
    for section in sections:
        load_before = os.getloadavg()[0]
        rows = []
        if section == "kernel":
            for batch in batches:
                for width in widths:
                    for threads in threads_list:
                        set_threads(threads)
                        rows.append(kernel_row(batch, width, threads, repeats, rng))
        else:
            for model in models:
                for batch in batches:
                    for threads in threads_list:
                        set_threads(threads)
                        rows.append(train_row(model, batch, threads, repeats))
        result[section] = {"rows": rows, "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    return result


def markdown(result: dict) -> str:
    lines = []
    if "kernel" in result:
        section = result["kernel"]
        lines += [f"binary_conv2d, reactnet-a block-3 layer 7x7xC -> C 3x3 s1 (C = 128 x width); "
                  f"median of {result['repeats']}, load {section['load_average_1min']}", "",
                  "| batch | width (C) | 1 thread ms | 2 threads ms | speed-up | GMAC/s (2 thr) | pack ms (2 thr) |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        lines += _paired(section["rows"], lambda one, two: (
            f"| {one['batch']} | x{one['width']:g} ({one['channels']}) | {one['conv_ms']:.3f} | {two['conv_ms']:.3f} | "
            f"{one['conv_ms'] / two['conv_ms']:.2f}x | {two['binary_gmacs']} | {two['pack_ms']:.3f} |"))
        lines.append("")
    if "train" in result:
        section = result["train"]
        lines += [f"training step per zoo model (forward, loss, backward, optimizer; its recipe); median of "
                  f"{result['repeats']}, {result['cpu_model']}, load {section['load_average_1min']}", "",
                  "| model | batch | 1 thread ms/step | 2 threads ms/step | speed-up | images/s (2 thr) | s/epoch (2 thr) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        lines += _paired(section["rows"], lambda one, two: (
            f"| {one['model']} | {one['batch']} | {one['step_ms']:.1f} | {two['step_ms']:.1f} | "
            f"{one['step_ms'] / two['step_ms']:.2f}x | {two['images_per_s']} | {two['epoch_s']} |"), key=("model", "batch"))
        lines.append("")
    return "\n".join(lines)


def _paired(rows, format_row, key=("batch", "width")):
    """One table line per ``key`` (e.g. batch and width): its 1-thread and 2-thread rows side by side."""
    by_key = {(*(r[k] for k in key), r["threads"]): r for r in rows}
    lines = []
    for (*point, threads), row in by_key.items():
        if threads == 1 and (*point, 2) in by_key:
            lines.append(format_row(row, by_key[(*point, 2)]))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--widths", default=",".join(f"{w:g}" for w in WIDTHS), help="kernel section only")
    parser.add_argument("--threads", default=",".join(map(str, THREADS)))
    parser.add_argument("--sections", default="kernel,train", help="kernel, train or both")
    parser.add_argument("--models", help="comma-separated zoo models for the train section (default: all registered)")
    parser.add_argument("--md-out", help="write the Markdown tables here")
    parser.add_argument("--json-out", help="write the JSON here")
    args = parser.parse_args()
    result = run([int(b) for b in args.batches.split(",")], [float(w) for w in args.widths.split(",")],
                 [int(t) for t in args.threads.split(",")], args.repeats, args.sections.split(","),
                 args.models.split(",") if args.models else [spec.name for spec in available_models()])
    text = markdown(result)
    for path, content in ((args.md_out, text), (args.json_out, json.dumps(result, indent=1))):
        if path:
            with open(path, "w") as file:
                file.write(content + "\n")
    print(text)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
