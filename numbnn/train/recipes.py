"""Training recipes made of ordinary fits: ReActNet's two-step schedule and ReActXGB's tree stage.

``config.recipe`` picks how :func:`run_recipe` trains:

- ``"single"``: one :func:`~numbnn.train.loop.fit` of the model as built.
- ``"two-step"`` (ReActNet, Liu et al. 2020, sec. 4.1 and the public ``run.sh``):

  * step 1 trains the same architecture with binary activations and *real* weights
    (``binary_weights=False``), with weight decay ``config.weight_decay`` on the conv kernels;
  * step 2 builds the fully binary network, copies **every** step-1 parameter and buffer into it by
    name (:func:`carry_over`; ReActNet's own code, liuzechun/ReActNet ``mobilenet/2_step2/train.py``,
    loads with ``strict=False``, and step 1's ``binary_3x3.weight`` does not match step 2's
    ``binary_3x3.weights`` in ``mobilenet/{1_step1,2_step2}/reactnet.py``, so the binary conv weights
    are silently dropped), and trains it with no weight decay.

  Epoch split: ``config.step1_epochs`` epochs of step 1 (default: half of ``config.epochs``, rounded
  up), then the rest in step 2; each step gets its own optimizer and a fresh linear decay to 0, as
  ReActNet restarts its schedule per step. Step 1 writes ``<out>.step1.h5``; step 2 writes ``<out>``.
  Each file stores that step's own settings (``recipe="single"``); the step-1 file also records the
  whole recipe, so ``--resume`` of it finishes step 1 and then runs step 2 into ``<out>``, and
  ``--resume`` of ``<out>`` finishes step 2.

After training, a model that defines ``fit_trees`` (ReActXGB) gets its second stage: pooled features
of the training images -> XGBoost (:func:`fit_tree_head`); the FC head's and the trees' test accuracy
are added to the last history record side by side, and the checkpoint is rewritten with the trees.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np

import numbnn.io
from numbnn.autograd import Tensor, no_grad
from numbnn.errors import CheckpointError, InputError
from numbnn.models import build_model
from numbnn.progress import ProgressBar
from numbnn.train.config import RECIPES, TrainConfig
from numbnn.train.data import BatchIterator
from numbnn.train.float_evaluation import evaluate
from numbnn.train.loop import FitResult, fit, targets_before_training


# -- two-step --------------------------------------------------------------------------------------------------


def split_epochs(config: TrainConfig) -> tuple[int, int]:
    """(step-1 epochs, step-2 epochs) of a two-step run: ``step1_epochs`` or ceil(epochs / 2), then the rest."""
    if config.epochs < 2:
        raise InputError(f"the two-step recipe needs --epochs >= 2 (one per step), got {config.epochs}")
    first = config.step1_epochs if config.step1_epochs is not None else math.ceil(config.epochs / 2)
    if not 1 <= first < config.epochs:
        raise InputError(f"step1_epochs must be in [1, {config.epochs - 1}] for --epochs {config.epochs}, got {first}")
    return first, config.epochs - first


def step_configs(config: TrainConfig) -> tuple[TrainConfig, TrainConfig]:
    """The settings of each step: its epochs, weight decay only in step 1, each a plain single run."""
    first, second = split_epochs(config)
    common = {"recipe": "single", "step1_epochs": None}
    return (config.replace(epochs=first, **common),
            config.replace(epochs=second, weight_decay=0.0, **common))


def step1_model(model):
    """A fresh copy of ``model``'s architecture with real weights (ReActNet's step 1)."""
    args = model.config.get("args", {})
    if "binary_weights" not in args:
        raise InputError(f"model {model.config['name']!r} has no binary_weights option, so it cannot train in two steps")
    return build_model(model.config["name"], **{**args, "binary_weights": False})


def carry_over(source, target) -> list[str]:
    """Copy every parameter and buffer of ``source`` into ``target`` by dotted name; return the names.

    Strict: a name present in only one of the two, or a shape mismatch, is a CheckpointError, so no
    weight can be silently left at its initial value (the failure of ReActNet's public step-2 loading).
    """
    state = source.state_dict()
    target.load_state_dict(state, strict=True)
    return list(state)


def two_step(model, config: TrainConfig, train_set, test_set=None, *, checkpoint: str | None = None,
             resume=None, **fit_options) -> FitResult:
    """Train ``model`` (built with binary weights) by ReActNet's two-step recipe; see the module docstring.

    ``resume``: the TrainingState of a step-1 checkpoint; step 1 continues from it, then step 2 runs.
    """
    config1, config2 = step_configs(config)
    teacher, started = fit_options.get("teacher"), time.perf_counter()
    with ProgressBar(fit_options.get("progress", True)) as bar:
        targets = targets_before_training(teacher, train_set[0], config, bar)
    if targets is not None:  # one teacher pass serves both steps
        fit_options = {**fit_options, "teacher_targets": targets}
    teacher_seconds = time.perf_counter() - started
    first = resume.model if resume is not None else step1_model(model)
    step1_path = str(step1_checkpoint_path(checkpoint)) if checkpoint is not None else None
    record = {"step": 1, "config": config.to_dict(), "final": Path(checkpoint).name} if checkpoint is not None else None
    result1 = fit(first, config1, train_set, test_set, checkpoint=step1_path, resume=resume, recipe=record,
                  **fit_options)
    if result1.interrupted:
        return result1
    carry_over(first, model)
    result2 = fit(model, config2, train_set, test_set, checkpoint=checkpoint, **fit_options)
    history = [{**record, "step": 1} for record in result1.history]
    history += [{**record, "step": 2, "epoch": record["epoch"] + config1.epochs} for record in result2.history]
    return dataclasses.replace(result2, history=history, epochs_completed=config1.epochs + result2.epochs_completed,
                               seconds=teacher_seconds + result1.seconds + result2.seconds)


def step1_checkpoint_path(path) -> Path:
    """``runs/x.h5`` -> ``runs/x.step1.h5``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.step1{path.suffix or '.h5'}")


# -- the tree head (ReActXGB) --------------------------------------------------------------------------------------


def pooled_features(model, images: np.ndarray, batch_size: int = 500, bar=None) -> np.ndarray:
    """``model.features`` of uint8 ``images`` [N, H, W] in eval mode, without augmentation: [N, C] float32."""
    batches = BatchIterator(images, np.zeros(len(images), np.int64), batch_size, shuffle=False)
    was_training = model.training
    model.eval()
    task = bar.task("features", len(batches)) if bar is not None else None
    chunks = []
    try:
        with no_grad():
            for x, _ in batches:
                chunks.append(model.features(Tensor(x)).data)
                if bar is not None:
                    bar.update(task)
    finally:
        model.train(was_training)
    return np.concatenate(chunks).astype(np.float32, copy=False)


def fit_tree_head(model, config: TrainConfig, train_set, test_set=None, progress: bool = True) -> dict:
    """ReActXGB's stage 2: fit the trees on the pooled training features; return the trees' test metrics."""
    with ProgressBar(progress) as bar:
        started = time.perf_counter()
        features = pooled_features(model, train_set[0], config.eval_batch_size, bar)
        model.fit_trees(features, train_set[1], seed=config.seed)
        heads = {"tree_fit_seconds": time.perf_counter() - started, "trees": len(model.tree_structure())}
        if test_set is not None:
            test = evaluate(model, *test_set, config.eval_batch_size, bar)
            heads.update(tree_test_accuracy=test.accuracy, tree_test_loss=test.loss)
    return heads


def heads_line(record: dict) -> str:
    """One line comparing the FC head and the tree head of a ReActXGB run's last history record."""
    text = f"tree head: {record['trees']} trees fitted in {record['tree_fit_seconds']:.1f} s"
    if "tree_test_accuracy" in record:
        text += f"; test accuracy: FC head {record['fc_test_accuracy']:.2%}, tree head {record['tree_test_accuracy']:.2%}"
    return text


def rewrite_checkpoint(path, model, history: list) -> None:
    """Store ``model`` (with whatever it adds through its checkpoint hook) and ``history`` into the
    checkpoint ``path`` that :func:`fit` wrote, keeping its optimizer, schedule and position so it
    stays resumable."""
    stored = numbnn.io.load_checkpoint(path)
    if stored.optimizer_state is None or stored.scheduler_state is None:
        raise CheckpointError(f"{path}: not a training checkpoint")
    numbnn.io.save(model, path, optimizer=_StoredState(stored.optimizer_state),
                   scheduler=_StoredState(stored.scheduler_state), rng=stored.rng_state, epoch=stored.epoch,
                   history=history, extra=stored.extra)


@dataclasses.dataclass
class _StoredState:
    """An already serialised optimizer/scheduler state, passed back to ``numbnn.io.save`` unchanged."""

    state: dict

    def state_dict(self) -> dict:
        return self.state


# -- dispatch ------------------------------------------------------------------------------------------------------


def run_recipe(model, config: TrainConfig, train_set, test_set=None, *, checkpoint: str | None = None,
               resume=None, progress: bool = True, **fit_options) -> FitResult:
    """Train ``model`` by ``config.recipe``, then run a tree stage if the model has one (module docstring).

    ``resume`` continues a checkpoint as a single run (each step's file stores single-run settings).
    """
    if config.recipe not in RECIPES:
        raise InputError(f"unknown recipe {config.recipe!r}; choose one of: {', '.join(RECIPES)}")
    has_tree_stage = hasattr(model, "fit_trees")
    if has_tree_stage:
        model.clear_trees()  # stage 1's epoch-end evaluations measure the FC head; the trees are refitted after
    if config.recipe == "two-step" and (resume is None or resume.recipe is not None):
        result = two_step(model, config, train_set, test_set, checkpoint=checkpoint, resume=resume, progress=progress,
                          **fit_options)
    else:
        result = fit(model, config, train_set, test_set, checkpoint=checkpoint, resume=resume, progress=progress,
                     **fit_options)
    if has_tree_stage and not result.interrupted:
        record = result.history[-1]
        record.update(fit_tree_head(model, config, train_set, test_set, progress))
        if "tree_test_accuracy" in record:  # the deployed head is the trees: they give the model's accuracy
            record.update(fc_test_accuracy=record["test_accuracy"], fc_test_loss=record["test_loss"],
                          test_accuracy=record["tree_test_accuracy"], test_loss=record["tree_test_loss"])
        if checkpoint is not None:
            rewrite_checkpoint(checkpoint, model, result.history)
    return result
