"""Test-split accuracy of a packed model: ``numbnn eval MODEL.h5`` and ``numbnn eval CKPT --packed``."""

from __future__ import annotations

import numpy as np

import numbnn.io
from numbnn.checks import check_int
from numbnn.datasets import fashion_mnist
from numbnn.errors import InputError
from numbnn.evaluation import Evaluation, Tally
from numbnn.inference.compiler import compile
from numbnn.inference.model import DEFAULT_BATCH, PackedModel, load


def evaluate(model: PackedModel, images: np.ndarray, labels: np.ndarray, batch_size: int = DEFAULT_BATCH,
             progress=None) -> Evaluation:
    """Accuracy and mean cross-entropy of ``model`` on uint8 ``images`` [N, H, W] with integer ``labels``.

    ``progress(done, total)`` is called after each batch.
    """
    check_int(batch_size, "batch_size")
    labels = np.asarray(labels).astype(np.int64)
    if len(images) != len(labels) or len(labels) == 0:
        raise InputError(f"need one label per image and at least one image, got {len(images)} and {len(labels)}")
    tally = Tally()
    for start in range(0, len(labels), batch_size):
        tally.add(model.predict(images[start:start + batch_size], batch_size), labels[start:start + batch_size])
        if progress is not None:
            progress(tally.n, len(labels))
    return tally.result()


def load_packed(path, from_checkpoint: bool = False) -> PackedModel:
    """A packed model file, or (``from_checkpoint``) a training checkpoint compiled on the fly."""
    if from_checkpoint:
        return compile(numbnn.io.load(path))
    return load(path)


def evaluate_file(path, *, from_checkpoint: bool = False, limit: int | None = None,
                  batch_size: int = DEFAULT_BATCH, data_dir=None, progress=None) -> Evaluation:
    """Accuracy on the first ``limit`` FashionMNIST test images (all by default) of a packed model file
    (or of a checkpoint compiled on the fly when ``from_checkpoint``)."""
    if limit is not None:
        check_int(limit, "limit")
    model = load_packed(path, from_checkpoint)
    images, labels = fashion_mnist("test", data_dir)
    return evaluate(model, images[:limit], labels[:limit], batch_size, progress)
