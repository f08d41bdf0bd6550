"""Packed model vs float model on the whole FashionMNIST test split, per checkpoint.

Usage::

    python3 benchmarks/inference_parity.py CKPT [CKPT ...] [--limit N] [--json]

For each checkpoint: the float model's eval-mode logits and the compiled packed model's logits on the
same test images (batches of 500), then the largest absolute logit difference, the number of images
whose predicted class differs (and how many of those are exact ties in the float logits), and both
accuracies. The test suite checks the same on 200 images; this is the full-split record.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import numbnn.io
from numbnn.autograd import Tensor, no_grad
from numbnn.datasets import fashion_mnist
from numbnn.inference import compile
from numbnn.train.data import normalize


def parity(path, images, labels, batch=500) -> dict:
    model = numbnn.io.load(path)
    model.eval()
    packed = compile(model)
    float_logits, packed_logits = [], []
    for start in range(0, len(images), batch):
        part = images[start:start + batch]
        with no_grad():
            float_logits.append(model(Tensor(normalize(part))).data)
        packed_logits.append(packed.predict(part))
    reference, got = np.concatenate(float_logits), np.concatenate(packed_logits)
    top2 = np.sort(reference, axis=1)[:, -2:]
    differ = reference.argmax(1) != got.argmax(1)
    return {
        "checkpoint": str(path), "model": packed.meta["config"]["name"], "images": len(images),
        "max_abs_logit_difference": float(np.abs(got.astype(np.float64) - reference).max()),
        "bit_identical_logits": bool(np.array_equal(got, reference)),
        "class_disagreements": int(differ.sum()), "of_which_exact_ties": int((differ & (top2[:, 0] == top2[:, 1])).sum()),
        "float_accuracy": float((reference.argmax(1) == labels).mean()),
        "packed_accuracy": float((got.argmax(1) == labels).mean()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    images, labels = fashion_mnist("test")
    images, labels = images[:args.limit], labels[:args.limit].astype(np.int64)
    rows = []
    for path in args.checkpoints:
        row = parity(path, images, labels)
        rows.append(row)
        print(f"{row['model']:12s} {row['images']} images: max |logit diff| {row['max_abs_logit_difference']:.3g}"
              f" (bit-identical: {row['bit_identical_logits']}), class disagreements {row['class_disagreements']}"
              f" ({row['of_which_exact_ties']} exact ties), accuracy float {row['float_accuracy']:.2%}"
              f" / packed {row['packed_accuracy']:.2%}", flush=True)
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
