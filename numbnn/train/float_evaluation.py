"""Accuracy and mean cross-entropy of a model on a labelled set: batched, eval mode, no graph."""

import numpy as np

from numbnn.autograd import Tensor, no_grad
from numbnn.evaluation import EVAL_BATCH_SIZE, Evaluation, Tally
from numbnn.train.data import BatchIterator


def predict_logits(model, x: np.ndarray) -> np.ndarray:
    """Logits [B, classes] for one float32 NHWC batch, without recording a graph."""
    with no_grad():
        return model(Tensor(x)).data


def evaluate(model, images: np.ndarray, labels: np.ndarray, batch_size: int = EVAL_BATCH_SIZE, bar=None) -> Evaluation:
    """Run ``model`` in eval mode over uint8 ``images`` [N, H, W] in their stored order.

    The model's train/eval mode is restored afterwards. Results do not depend on ``batch_size`` except
    through float rounding in the float layers (BLAS blocking), so the CLI uses one default everywhere.
    """
    batches = BatchIterator(images, labels, batch_size, shuffle=False)
    was_training = getattr(model, "training", False)
    model.eval()
    task = bar.task("evaluate", len(batches)) if bar is not None else None
    tally = Tally()
    try:
        for x, y in batches:
            tally.add(predict_logits(model, x), y)
            if bar is not None:
                bar.update(task, metrics=f"acc {tally.correct / tally.n:.2%}")
    finally:
        if was_training:
            model.train()
    return tally.result()
