"""What a training checkpoint adds to a model file, and reading it back for ``--resume``.

On top of the model (:func:`numbnn.io.save`), a training checkpoint stores the optimizer and schedule
state, the history, and the run's position: ``epoch`` = epochs completed, ``rng`` = the generator's
state at the start of the next epoch to run, and in ``extra``: the :class:`TrainConfig`, ``step`` =
batches of that epoch already applied (0 at an epoch boundary; > 0 only after a Ctrl-C) and the
running sums of that partial epoch.
"""

from dataclasses import dataclass

import numbnn.io
from numbnn.errors import CheckpointError, InputError
from numbnn.train.config import TrainConfig

_PARTIAL_KEYS = ("loss_sum", "correct", "seen", "seconds")


@dataclass
class TrainingState:
    model: object  # rebuilt, with the checkpoint's weights loaded
    config: TrainConfig
    optimizer: dict
    scheduler: dict
    epoch: int
    step: int
    rng_state: dict
    partial: dict
    history: list


def save_training_state(path, model, optimizer, scheduler, config: TrainConfig, epoch: int, step: int,
                        rng_state: dict, partial: dict, history: list) -> None:
    """Write everything :func:`read_training_state` needs, atomically (a crash keeps the old file)."""
    extra = {"train_config": config.to_dict(), "step": int(step), "partial_epoch": {k: partial[k] for k in _PARTIAL_KEYS}}
    try:
        numbnn.io.save(model, path, optimizer=optimizer, scheduler=scheduler, rng=rng_state, epoch=int(epoch),
                       history=history, extra=extra)
    except OSError as error:
        raise CheckpointError(f"cannot write the checkpoint {str(path)!r}: {error.strerror or error}") from None


def read_training_state(path) -> TrainingState:
    """Rebuild the model and read the training state; a plain model file (no optimizer state) is refused."""
    checkpoint = numbnn.io.load_checkpoint(path)
    extra = checkpoint.extra or {}
    missing = [name for name, value in (("optimizer", checkpoint.optimizer_state), ("scheduler", checkpoint.scheduler_state),
                                        ("rng", checkpoint.rng_state), ("epoch", checkpoint.epoch),
                                        ("history", checkpoint.history), ("training config", extra.get("train_config")))
               if value is None]
    if missing:
        raise CheckpointError(f"{path}: not a resumable training checkpoint (no {', '.join(missing)})")
    try:
        config = TrainConfig.from_dict(extra["train_config"])
        step = int(extra.get("step", 0))
        partial = {key: extra.get("partial_epoch", {}).get(key, 0) for key in _PARTIAL_KEYS}
    except (InputError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{path}: invalid training settings: {error}") from None
    if step < 0:
        raise CheckpointError(f"{path}: invalid step {step}")
    model = numbnn.io.load(path)
    return TrainingState(model, config, checkpoint.optimizer_state, checkpoint.scheduler_state, checkpoint.epoch,
                         step, checkpoint.rng_state, partial, checkpoint.history)
