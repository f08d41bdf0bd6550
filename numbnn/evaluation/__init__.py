"""Accuracy and mean cross-entropy from batches of logits: one record for training and packed inference.

The float model (:mod:`numbnn.train.float_evaluation`) and the packed model (:mod:`numbnn.evaluation.packed`)
both add their logits batch by batch to a :class:`Tally`, so ``numbnn eval`` reports the same numbers,
computed the same way, for both. Loss: the mean over images of -log softmax(logits)[label], in float64,
shifted by each row's maximum so exp never overflows.

This module imports numpy only, so training imports it; :mod:`numbnn.evaluation.packed` sits above
inference. The float evaluation stays in ``numbnn/train/float_evaluation.py``: it is the training loop's
end-of-epoch pass and batches through ``numbnn.train.data``, so outside train it would make a cycle.
"""

from dataclasses import dataclass

import numpy as np

# Images per forward pass when evaluating, in training and in ``numbnn eval`` alike (a default only:
# the figures do not depend on it, the memory does).
EVAL_BATCH_SIZE = 500


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # fraction in [0, 1]
    loss: float  # mean cross-entropy (no label smoothing)
    correct: int
    n: int


class Tally:
    """Running count of correct predictions and summed cross-entropy over ``add``-ed batches."""

    def __init__(self):
        self.correct, self.n, self.loss_sum = 0, 0, 0.0

    def add(self, logits: np.ndarray, labels: np.ndarray) -> None:
        logits = np.asarray(logits, np.float64)
        labels = np.asarray(labels, np.int64)
        self.correct += int((logits.argmax(axis=1) == labels).sum())
        self.n += len(labels)
        self.loss_sum -= float(log_softmax(logits)[np.arange(len(labels)), labels].sum())

    def result(self) -> Evaluation:
        return Evaluation(accuracy=self.correct / self.n, loss=self.loss_sum / self.n, correct=self.correct, n=self.n)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax, shifted by the row maximum so exp never overflows."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
