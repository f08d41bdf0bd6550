"""Test-split accuracy of a packed model: ``numbnn eval MODEL.h5`` and ``numbnn eval CKPT --packed``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import numbnn.io
from numbnn.datasets import fashion_mnist
from numbnn.errors import InputError
from numbnn.inference.compiler import compile
from numbnn.inference.model import DEFAULT_BATCH, PackedModel, load


@dataclass(frozen=True)
class Evaluation:
    """The same fields as :class:`numbnn.train.evaluate.Evaluation` (accuracy in [0, 1], mean cross-entropy)."""

    accuracy: float
    loss: float
    correct: int
    n: int


def evaluate(model: PackedModel, images: np.ndarray, labels: np.ndarray, batch_size: int = DEFAULT_BATCH,
             progress=None) -> Evaluation:
    """Accuracy and mean cross-entropy of ``model`` on uint8 ``images`` [N, H, W] with integer ``labels``.

    ``progress(done, total)`` is called after each batch.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    labels = np.asarray(labels).astype(np.int64)
    if len(images) != len(labels) or len(labels) == 0:
        raise InputError(f"need one label per image and at least one image, got {len(images)} and {len(labels)}")
    correct, loss_sum = 0, 0.0
    for start in range(0, len(labels), batch_size):
        logits = model.predict(images[start:start + batch_size], batch_size).astype(np.float64)
        y = labels[start:start + batch_size]
        correct += int((logits.argmax(axis=1) == y).sum())
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss_sum -= float(log_probabilities[np.arange(len(y)), y].sum())
        if progress is not None:
            progress(min(start + batch_size, len(labels)), len(labels))
    return Evaluation(correct / len(labels), loss_sum / len(labels), correct, len(labels))


def load_packed(path, from_checkpoint: bool = False) -> PackedModel:
    """A packed model file, or (``from_checkpoint``) a training checkpoint compiled on the fly."""
    if from_checkpoint:
        return compile(numbnn.io.load(path))
    return load(path)


def evaluate_file(path, *, from_checkpoint: bool = False, limit: int | None = None,
                  batch_size: int = DEFAULT_BATCH, data_dir=None, progress=None) -> Evaluation:
    """Accuracy on the first ``limit`` FashionMNIST test images (all by default) of a packed model file
    (or of a checkpoint compiled on the fly when ``from_checkpoint``)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be a positive integer, got {limit!r}")
    model = load_packed(path, from_checkpoint)
    images, labels = fashion_mnist("test", data_dir)
    return evaluate(model, images[:limit], labels[:limit], batch_size, progress)
