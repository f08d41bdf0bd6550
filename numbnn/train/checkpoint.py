"""What a training checkpoint adds to a model file, and reading it back for ``--resume``.

On top of the model (:func:`numbnn.io.save`), a training checkpoint stores the optimizer and schedule
state, the history, and the run's position: ``epoch`` = epochs completed, ``rng`` = the generator's
state at the start of the next epoch to run, and in ``extra``: the :class:`TrainConfig`, ``step`` =
batches of that epoch already applied (0 at an epoch boundary; > 0 only after a Ctrl-C) and the
running sums of that partial epoch.
"""

import math
from dataclasses import dataclass

import numpy as np

import numbnn.io
from numbnn.checks import check_int
from numbnn.errors import CheckpointError, InputError, NumbnnError
from numbnn.train.config import TrainConfig
from numbnn.threads import current_threads

_PARTIAL_KEYS = ("loss_sum", "correct", "seen", "seconds")
_HISTORY_KEYS = ("epoch", "images", "seconds")  # what a resumed run reads back from earlier epochs
TRAINING_BIT_GENERATOR = "PCG64"  # what np.random.default_rng, the training loop's generator, uses


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
    threads: int | None = None  # the thread count the checkpoint was computed with (None: an older file)
    recipe: dict | None = None  # step 1 of a two-step run: {"step": 1, "config": the whole recipe's, "final": name}


def save_training_state(path, model, optimizer, scheduler, config: TrainConfig, epoch: int, step: int,
                        rng_state: dict, partial: dict, history: list, recipe: dict | None = None) -> None:
    """Write everything :func:`read_training_state` needs, atomically (a crash keeps the old file).

    Also stored: ``threads``, the thread count the run computes with (float sums round differently with
    another count, so a resume must use the same one to stay bit-exact), and ``recipe``: for step 1 of a
    two-step run, the whole recipe's settings and the final checkpoint's name, so ``--resume`` of the
    step-1 file continues through step 2.
    """
    extra = {"train_config": config.to_dict(), "step": int(step), "partial_epoch": {k: partial[k] for k in _PARTIAL_KEYS},
             "threads": current_threads()}
    if recipe is not None:
        extra["recipe"] = recipe
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
    except (InputError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{path}: invalid training settings: {error}") from None
    step = extra.get("step", 0)
    if not _is_count(step):
        raise CheckpointError(f"{path}: invalid step {step!r} (expected a non-negative integer)")
    partial = extra.get("partial_epoch", {})
    if not isinstance(partial, dict):
        raise CheckpointError(f"{path}: invalid partial_epoch {partial!r}")
    partial = {key: partial.get(key, 0) for key in _PARTIAL_KEYS}
    for key, value in partial.items():
        valid = _is_count(value) if key in ("correct", "seen") else _is_finite_number(value) and value >= 0
        if not valid:
            raise CheckpointError(f"{path}: invalid partial_epoch {key} {value!r}")
    _check_history(checkpoint.history, path)
    if checkpoint.epoch < 0 or len(checkpoint.history) != checkpoint.epoch:
        raise CheckpointError(f"{path}: epoch {checkpoint.epoch} does not match the {len(checkpoint.history)} "
                              "history record(s)")
    try:
        rng_state = numbnn.io.restore_rng(checkpoint.rng_state).bit_generator.state
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    if rng_state["bit_generator"] != TRAINING_BIT_GENERATOR:
        raise CheckpointError(f"{path}: training RNG state is {rng_state['bit_generator']}, expected {TRAINING_BIT_GENERATOR}")
    threads = extra.get("threads")
    if threads is not None:
        threads = check_int(threads, f"{path}: thread count", error=CheckpointError)
    recipe = _check_recipe(extra.get("recipe"), path)
    model = numbnn.io.load(path)
    return TrainingState(model, config, checkpoint.optimizer_state, checkpoint.scheduler_state, checkpoint.epoch,
                         step, rng_state, partial, checkpoint.history, threads, recipe)


def _check_recipe(recipe, path) -> dict | None:
    if recipe is None:
        return None
    try:
        if not isinstance(recipe, dict) or recipe.get("step") != 1 or not isinstance(recipe.get("final"), str):
            raise ValueError("expected {step: 1, config, final}")
        name = recipe["final"]
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"final checkpoint name {name!r}")
        config = TrainConfig.from_dict(recipe["config"])
        if config.recipe != "two-step":
            raise ValueError("the recipe config is not two-step")
    except (InputError, TypeError, ValueError, KeyError, AttributeError) as error:
        raise CheckpointError(f"{path}: invalid two-step recipe record: {error}") from None
    return {**recipe, "config": config}


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_history_value(value) -> bool:
    """A number that is not infinite, or None: NaN and None mark what an epoch did not measure (no test
    set; no binary weights for ``weight_flips``)."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isinf(value))


def _check_history(history: list, path) -> None:
    """Per-epoch records: objects of numbers (a crafted string would break the sums of a resumed run)."""
    for index, record in enumerate(history):
        if (not isinstance(record, dict) or not all(_is_history_value(v) for v in record.values())
                or not all(key in record and record[key] >= 0 for key in _HISTORY_KEYS)):
            raise CheckpointError(f"{path}: history record {index} is not an object of numbers with "
                                  f"{', '.join(_HISTORY_KEYS)}: {record!r}"[:300])


def restore_optimizer(optimizer, scheduler, state: TrainingState) -> None:
    """Load the optimizer and schedule state of a resumed run; anything malformed is a CheckpointError.

    The loaders check layout and shapes; this adds what a crafted file could still slip in: non-finite
    or negative counters and moments that would fail (or silently poison the weights) steps later.
    """
    try:
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
    except NumbnnError as error:
        raise CheckpointError(f"resume: {error}") from None
    except Exception as error:  # a crafted value of the wrong type: any conversion error
        raise CheckpointError(f"resume: invalid optimizer or schedule state ({type(error).__name__}: {error})") from None
    if not _is_count(scheduler.step_count) or not all(_is_finite_number(v) and v >= 0 for v in scheduler.base_lrs):
        raise CheckpointError(f"resume: invalid schedule state (step {scheduler.step_count}, rates {scheduler.base_lrs})")
    for group in optimizer.param_groups:
        for key, default in optimizer.defaults.items():
            value = group[key]
            values = value if isinstance(value, tuple) else (value,)
            if (isinstance(default, tuple) and len(values) != len(default)) or not all(
                    _is_finite_number(v) for v in values if not isinstance(v, (bool, str))):
                raise CheckpointError(f"resume: optimizer hyper-parameter {key} = {value!r} is invalid")
    layouts = {tuple(sorted(entry)) for entry in optimizer._state.values()}
    if len(layouts) > 1:  # every parameter's state has the same entries (e.g. Adam's step, m, v)
        raise CheckpointError(f"resume: optimizer state entries differ between parameters: {sorted(layouts)}")
    for entry in optimizer._state.values():
        for name, value in entry.items():
            if isinstance(value, np.ndarray):
                if value.dtype.kind == "f" and not np.isfinite(value).all():
                    raise CheckpointError(f"resume: optimizer state {name!r} holds NaN or inf values")
            elif not (_is_count(value) if isinstance(value, int) else _is_finite_number(value)):
                raise CheckpointError(f"resume: optimizer state {name!r} = {value!r} is invalid")
