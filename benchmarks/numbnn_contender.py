"""numbnn's side of ``benchmarks/torch_twin.py``'s timing, in a process of its own that never imports torch.

Usage (torch_twin.py runs it; by hand only to debug)::

    python3 benchmarks/numbnn_contender.py --model reactnet-a --batch-size 64 --steps 5 --warmup 2 --threads 2 [--eval] [--packed [--cache-runs]]

Why a separate process: PyTorch and Numba both run OpenMP pools, and on Linux both use the system's
GNU libgomp, which reads its settings (GOMP_SPINCOUNT, OMP_WAIT_POLICY) once, when it loads. In one
process the library imported first decides both libraries' waiting, and two pools of 2 threads on 2
cores are more threads than cores, for which libgomp cuts spinning to 100 rounds (its documentation
of GOMP_SPINCOUNT). Each contender in its own process runs as a user of
that library alone would run it: numbnn with the settings :mod:`numbnn.kernels` chooses, torch with
its defaults.

Prints one JSON object: for "train" (numbnn.bench.train.TrainStep: the model's recipe on synthetic
batches), and with ``--eval`` for "float" (the float model's no-grad forward on the first batch) and
with ``--packed`` for "packed" (the compiled model's ``predict`` on uint8 images; with ``--cache-runs`` in runs
of its ``cache_batch_size``, :mod:`numbnn.inference.runs`), the median wall and
process-CPU seconds of ``--steps`` calls after ``--warmup + 1`` untimed ones.
"""

from __future__ import annotations

import argparse
import json
import numpy as np

from numbnn.autograd import Tensor, no_grad
from numbnn.bench.train import TrainStep, median_step_seconds
from numbnn.threads import set_threads


def synthetic_images(batch_size: int) -> np.ndarray:
    """uint8 images for the packed model (it normalises them itself); torch_twin.py draws the same."""
    return np.random.default_rng(0).integers(0, 256, size=(batch_size, 28, 28), dtype=np.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-train", dest="train", action="store_false")
    parser.add_argument("--eval", action="store_true", help="also time the float model's eval forward")
    parser.add_argument("--packed", action="store_true", help="also time the packed model's predict")
    parser.add_argument("--cache-runs", action="store_true", help="the packed model's predict in runs of its "
                        "cache_batch_size (numbnn.inference.runs) instead of one run")
    args = parser.parse_args()
    set_threads(args.threads)
    trainer = TrainStep(args.model, args.batch_size)
    result = {}
    if args.train:
        result["train"] = median_step_seconds(trainer.run, args.steps, args.warmup)
    if args.eval or args.packed:
        model = trainer.model.eval()
        if args.eval:
            x = Tensor(trainer.batches[0][0])

            def forward(i):
                with no_grad():
                    return model(x)

            result["float"] = median_step_seconds(forward, args.steps, args.warmup)
        if args.packed:
            from numbnn.inference import compile as compile_packed

            images, net = synthetic_images(args.batch_size), compile_packed(model)
            runs = {"batch_size": net.cache_batch_size} if args.cache_runs else {}  # else predict's default
            result["packed"] = median_step_seconds(lambda i: net.predict(images, **runs), args.steps, args.warmup)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
