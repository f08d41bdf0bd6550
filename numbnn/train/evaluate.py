"""Accuracy and mean cross-entropy of a model on a labelled set: batched, eval mode, no graph."""

from dataclasses import dataclass

import numpy as np

from numbnn.autograd import Tensor, no_grad
from numbnn.train.data import BatchIterator


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # fraction in [0, 1]
    loss: float  # mean cross-entropy (no label smoothing)
    correct: int
    n: int


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax, shifted by the row maximum so exp never overflows."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def predict_logits(model, x: np.ndarray) -> np.ndarray:
    """Logits [B, classes] for one float32 NHWC batch, without recording a graph."""
    with no_grad():
        return model(Tensor(x)).data


def evaluate(model, images: np.ndarray, labels: np.ndarray, batch_size: int = 500, bar=None) -> Evaluation:
    """Run ``model`` in eval mode over uint8 ``images`` [N, H, W] in their stored order.

    The model's train/eval mode is restored afterwards. Results do not depend on ``batch_size`` except
    through float rounding in the float layers (BLAS blocking), so the CLI uses one default everywhere.
    """
    batches = BatchIterator(images, labels, batch_size, shuffle=False)
    was_training = getattr(model, "training", False)
    model.eval()
    task = bar.task("evaluate", len(batches)) if bar is not None else None
    correct, seen, loss_sum = 0, 0, 0.0
    try:
        for x, y in batches:
            logits = predict_logits(model, x)
            correct += int((logits.argmax(axis=1) == y).sum())
            seen += len(y)
            loss_sum -= float(log_softmax(logits.astype(np.float64))[np.arange(len(y)), y].sum())
            if bar is not None:
                bar.update(task, metrics=f"acc {correct / seen:.2%}")
    finally:
        if was_training:
            model.train()
    n = len(images)
    return Evaluation(accuracy=correct / n, loss=loss_sum / n, correct=correct, n=n)
