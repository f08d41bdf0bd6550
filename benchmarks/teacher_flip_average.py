"""How good a teacher is alone, on mirror images, and averaged over both (``--teacher-targets once-flip-averaged``).

Usage::

    python3 benchmarks/teacher_flip_average.py [TEACHER] [--threads 2] [--json]

TEACHER: a checkpoint or a shipped teacher's name (default resnet-20). Prints the test accuracy of the
teacher's softmax on each test image, on its mirror image (columns reversed), and of the mean of the
two: the last is the accuracy of the teacher that ``once-flip-averaged`` targets distil from.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import numbnn.io
from numbnn.datasets import fashion_mnist
from numbnn.kernels.platform import cpu_model
from numbnn.threads import set_threads
from numbnn.train.data import normalize
from numbnn.train.loop import predict_softmax
from numbnn.train.teachers import resolve_teacher

BATCH = 500


def softmax_of(model, images: np.ndarray) -> np.ndarray:
    return np.concatenate([predict_softmax(model, images[i:i + BATCH]) for i in range(0, len(images), BATCH)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", nargs="?", default="resnet-20")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    set_threads(args.threads)
    started = time.perf_counter()
    model = numbnn.io.load(resolve_teacher(args.teacher))
    model.eval()
    images, labels = fashion_mnist("test")
    x = normalize(images)
    plain = softmax_of(model, x)
    mirrored = softmax_of(model, np.ascontiguousarray(x[:, :, ::-1]))
    accuracy = {name: float((p.argmax(axis=1) == labels).mean())
                for name, p in (("plain", plain), ("mirrored", mirrored), ("flip_averaged", (plain + mirrored) / 2))}
    result = {"teacher": args.teacher, "test_images": int(len(labels)), "test_accuracy": accuracy,
              "cpu_model": cpu_model(), "seconds": time.perf_counter() - started}
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in accuracy.items():
            print(f"{name:>14}: {value:.2%}")


if __name__ == "__main__":
    main()
