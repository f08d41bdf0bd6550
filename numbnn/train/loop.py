"""The epoch loop: shuffled augmented mini-batches, loss, backward, clip, optimizer and schedule steps,
evaluation at each epoch end, checkpoints, divergence and Ctrl-C handling, exact resume.

Where a run stands is a :class:`Position`: completed epochs, batches done in the current epoch, the
random generator's state at the start of the current epoch, and the running sums of the unfinished
epoch. Every random number of an epoch is drawn from that state when the epoch starts (see
:mod:`numbnn.train.data`), so restoring a Position (plus model, optimizer and schedule state) and
skipping the done batches replays the rest of the run bit for bit. Checkpoints store exactly this.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np

import numbnn.functional as F
from numbnn.autograd import Tensor
from numbnn.errors import InputError, TrainingDivergedError
from numbnn.optim import clip_grad_norm
from numbnn.progress import ProgressBar
from numbnn.train.checkpoint import TrainingState, restore_optimizer, save_training_state
from numbnn.train.config import TrainConfig
from numbnn.train.data import Augmentation, BatchIterator
from numbnn.train.float_evaluation import evaluate, predict_logits
from numbnn.memory import retain_freed_memory
from numbnn.threads import default_threads
from numbnn.train.optimizers import build_optimizer
from numbnn.train.signals import StopRequest
from numbnn.train.target_cache import cached_targets, targets_key


@dataclass
class Position:
    epoch: int  # epochs completed
    step: int  # batches of epoch `epoch` already applied
    rng_state: dict  # generator state at the start of epoch `epoch`
    partial: dict = field(default_factory=lambda: {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0})


@dataclass
class FitResult:
    history: list  # one dict per completed epoch (see `_epoch_record`)
    epochs_completed: int
    interrupted: bool  # stopped by SIGINT/SIGTERM; `checkpoint` (if any) resumes the run
    step: int  # batches done in the unfinished epoch when interrupted, else 0
    checkpoint: str | None
    seconds: float  # wall-clock time of this call

    @property
    def test_accuracy(self) -> float | None:
        return self.history[-1]["test_accuracy"] if self.history else None

    @property
    def images_per_s(self) -> float:
        """Training throughput over the epochs in the history (evaluation excluded)."""
        seconds = sum(h["seconds"] for h in self.history)
        return sum(h["images"] for h in self.history) / seconds if seconds > 0 else 0.0


def fit(
    model,
    config: TrainConfig,
    train_set: tuple,
    test_set: tuple | None = None,
    *,
    teacher=None,
    teacher_targets: np.ndarray | None = None,
    checkpoint: str | None = None,
    resume: TrainingState | None = None,
    progress: bool = True,
    after_step=None,
    recipe: dict | None = None,
) -> FitResult:
    """Train ``model`` in place by ``config`` on ``train_set = (uint8 images [N,H,W], labels [N])``.

    - ``test_set``: evaluated at each epoch end (accuracy goes into the history).
    - ``teacher``: a model whose softmax is the target (distillation: soft cross-entropy to the
      teacher's distribution, ReActNet's loss); run in eval mode without a graph. Label smoothing does
      not apply then.
    - ``teacher_targets``: :func:`teacher_targets_once` of ``teacher`` on these training images, when
      the caller already has them (the two-step recipe computes them once for both steps).
    - ``checkpoint``: path written (atomically) every ``config.save_every`` epochs, after the last
      epoch, and when a SIGINT/SIGTERM stops the run mid-epoch (then at the exact step reached).
    - ``resume``: a :class:`TrainingState` read from such a checkpoint; ``model`` must already hold its
      weights (``numbnn.io.load``). Training continues exactly where that checkpoint stood.
    - ``after_step(epoch, step)``: called after every optimizer step (tests use it to inject faults).
    - ``recipe``: stored with every checkpoint (step 1 of a two-step run records the whole recipe).

    A non-finite loss raises :class:`TrainingDivergedError` naming epoch and step, before the update,
    and without writing a checkpoint, so the last good one stays intact.
    """
    started = time.perf_counter()
    retain_freed_memory()
    default_threads()
    rng = np.random.default_rng(config.seed)
    augmentation = Augmentation(config.crop_padding, config.flip)
    images, labels = train_set
    # Batches carry row numbers, so a batch finds both its labels and (teacher_targets "once") its targets.
    batches = BatchIterator(images, np.arange(len(labels)), config.batch_size, rng=rng, augmentation=augmentation)
    optimizer, scheduler = build_optimizer(model, config, len(batches))
    if resume is not None:
        restore_optimizer(optimizer, scheduler, resume)
        position, history = Position(resume.epoch, resume.step, resume.rng_state, dict(resume.partial)), list(resume.history)
        if position.step >= len(batches):
            raise InputError(f"resume: checkpoint is at step {position.step}, but an epoch has only {len(batches)} steps")
    else:
        position, history = Position(0, 0, rng.bit_generator.state), []
    if teacher is not None:
        teacher.eval()

    def save(pos: Position) -> None:
        if checkpoint is not None:
            _check_finite_parameters(model, pos)
            save_training_state(checkpoint, model, optimizer, scheduler, config, pos.epoch, pos.step, pos.rng_state,
                                pos.partial, history, recipe)

    def result(interrupted: bool, pos: Position) -> FitResult:
        return FitResult(history, pos.epoch, interrupted, pos.step, checkpoint, time.perf_counter() - started)

    with StopRequest() as stop, ProgressBar(progress) as bar:
        targets = teacher_targets if teacher_targets is not None else targets_before_training(teacher, images, config, bar)
        for epoch in range(position.epoch, config.epochs):
            rng.bit_generator.state = position.rng_state
            plan = batches.plan_epoch()
            sums = position.partial
            task = bar.task(f"epoch {epoch + 1}/{config.epochs}", len(batches), completed=position.step)
            model.train()
            signs_at_start = binary_weight_signs(model)
            last_step = len(batches) - 1
            for step, (x, rows) in enumerate(batches.batches(plan, position.step), start=position.step):
                tick = time.perf_counter()
                y = labels[rows]
                if targets is not None:
                    target = targets[rows]
                elif teacher is not None:
                    target = predict_softmax(teacher, x)
                else:
                    target = None
                loss, correct = train_step(model, x, y, target, config, optimizer, epoch, step, len(batches))
                lr_used = optimizer.lr
                scheduler.step()
                sums["loss_sum"] += loss * len(y)
                sums["correct"] += correct
                sums["seen"] += len(y)
                sums["seconds"] += time.perf_counter() - tick
                bar.update(task, metrics=_metrics_text(sums))
                if after_step is not None:
                    after_step(epoch, step)
                if stop.requested and step < last_step:
                    interrupted = Position(epoch, step + 1, position.rng_state, sums)
                    save(interrupted)
                    return result(True, interrupted)
            test = evaluate(model, *test_set, config.eval_batch_size, bar) if test_set is not None else None
            history.append(_epoch_record(epoch, sums, test, lr_used, flipped_fraction(signs_at_start, binary_weight_signs(model))))
            bar.log(_epoch_line(history[-1], config.epochs))
            position = Position(epoch + 1, 0, rng.bit_generator.state)
            if (epoch + 1) % config.save_every == 0 or epoch + 1 == config.epochs or stop.requested:
                save(position)
            if stop.requested:
                return result(epoch + 1 < config.epochs, position)
    return result(False, position)


def train_step(model, x, y, target, config, optimizer, epoch, step, steps):
    """One optimizer step on a batch; returns (loss, correct predictions). Raises on a non-finite loss.

    ``target``: the teacher's class distribution [B, classes] (distillation), or None (labels ``y``)."""
    optimizer.zero_grad()
    logits = model(Tensor(x))
    if target is not None:
        loss = F.soft_cross_entropy(logits, target)
    else:
        loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
    value = float(loss.data)
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"training diverged: the loss is {value} at epoch {epoch + 1}, step {step + 1}/{steps}"
            " (try a lower --lr or --grad-clip); the last checkpoint written, if any, is intact"
        )
    loss.backward()
    if config.grad_clip is not None:
        clip_grad_norm(model.parameters(), config.grad_clip)
    optimizer.step()
    return value, int((logits.data.argmax(axis=1) == y).sum())


def predict_softmax(teacher, x: np.ndarray) -> np.ndarray:
    """The teacher's class distribution [B, classes] for a float32 NHWC batch (no graph)."""
    logits = predict_logits(teacher, x)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def targets_before_training(teacher, images: np.ndarray, config, bar) -> np.ndarray | None:
    """The teacher's targets of ``images`` when ``config.teacher_targets`` computes them before training
    ("once", "once-flip-averaged"); None without a teacher or with "batch" (the teacher runs per batch)."""
    if teacher is None or config.teacher_targets == "batch":
        return None
    return teacher_targets_once(teacher, images, config.eval_batch_size, bar,
                                flip_averaged=config.teacher_targets == "once-flip-averaged")


def teacher_targets_once(teacher, images: np.ndarray, batch_size: int, bar, *, flip_averaged: bool = False) -> np.ndarray:
    """The teacher's distribution [N, classes] for every un-augmented training image, in stored order.

    ``teacher_targets="once"``: one teacher pass before training instead of one per epoch on the
    augmented batches. A 2-pixel crop or a horizontal flip keeps an image's class, so the un-augmented
    image's distribution serves as the target of its augmented copies (chosen on proxies; see
    ``BINARY_RECIPE`` in numbnn/models/layout.py for the commands and figures). ``flip_averaged``
    ("once-flip-averaged"): the target is (softmax(T(x)) + softmax(T(mirror(x)))) / 2, the teacher made
    mirror-symmetric, at two passes. Runs that share the teacher, images, batch size and averaging share
    one pass (:mod:`numbnn.train.target_cache`)."""
    teacher.eval()

    def compute() -> np.ndarray:
        batches = BatchIterator(images, np.zeros(len(images), np.int64), batch_size, shuffle=False)
        task = bar.task("teacher", len(batches))
        chunks = []
        for x, _ in batches:
            target = predict_softmax(teacher, x)
            if flip_averaged:
                target = (target + predict_softmax(teacher, np.ascontiguousarray(x[:, :, ::-1]))) / 2
            chunks.append(target)
            bar.update(task)
        return np.concatenate(chunks)

    key = targets_key(teacher, images, batch_size, flip_averaged=flip_averaged)
    return cached_targets(key, len(images), compute)


def _check_finite_parameters(model, position: Position) -> None:
    """Never write a checkpoint whose weights or statistics are NaN/inf (an inf gradient can get there)."""
    for name, array in model.state_dict().items():
        if np.issubdtype(np.asarray(array).dtype, np.floating) and not np.isfinite(array).all():
            raise TrainingDivergedError(
                f"training diverged: {name} is not finite at epoch {position.epoch + 1}, step {position.step} "
                "(try a lower --lr or --grad-clip); the last checkpoint written, if any, is intact"
            )


def binary_weight_signs(model) -> list[np.ndarray]:
    """Which latent weights are negative, for every layer whose weights the forward pass binarizes."""
    return [module.weight.data < 0 for module in model.modules() if getattr(module, "binarize_weights", False)]


def flipped_fraction(before: list[np.ndarray], after: list[np.ndarray]) -> float | None:
    """Share of binary weights whose sign differs between two :func:`binary_weight_signs` (None: none).

    Only sign flips change a binary network's forward pass, so this is the measure of whether its
    binary weights are learning at all (0 for many epochs: they are not; tens of percent: noise).
    """
    total = sum(signs.size for signs in before)
    if total == 0:
        return None
    return sum(int(np.count_nonzero(a != b)) for a, b in zip(before, after)) / total


def _epoch_record(epoch: int, sums: dict, test, lr: float, weight_flips: float | None) -> dict:
    """One history entry. ``weight_flips``: :func:`flipped_fraction` over the epoch (from the resume
    point, for an epoch that was resumed)."""
    seen, seconds = sums["seen"], sums["seconds"]
    return {
        "epoch": epoch + 1,
        "train_loss": sums["loss_sum"] / seen,
        "train_accuracy": sums["correct"] / seen,
        "test_accuracy": test.accuracy if test is not None else float("nan"),
        "test_loss": test.loss if test is not None else float("nan"),
        "images": seen,
        "seconds": seconds,
        "images_per_s": seen / seconds if seconds > 0 else 0.0,
        "lr": lr,
        "weight_flips": weight_flips,
    }


def _metrics_text(sums: dict) -> str:
    seen = max(sums["seen"], 1)
    rate = sums["seen"] / sums["seconds"] if sums["seconds"] > 0 else 0.0
    return f"loss {sums['loss_sum'] / seen:.4f} acc {sums['correct'] / seen:.2%} {rate:,.0f} img/s"


def _epoch_line(record: dict, epochs: int) -> str:
    flips = record.get("weight_flips")
    return (
        f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f}, "
        f"train acc {record['train_accuracy']:.2%}, test acc {record['test_accuracy']:.2%}, "
        f"{record['seconds']:.1f} s ({record['images_per_s']:,.0f} img/s), lr {record['lr']:.3g}"
        + ("" if flips is None else f", weight signs flipped {flips:.2%}")
    )
