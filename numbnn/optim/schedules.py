"""Learning-rate schedules and the :class:`Scheduler` that applies them.

A schedule is a small picklable callable ``factor(t) -> float`` that multiplies each parameter group's
base learning rate at step ``t`` (t = 0 before the first ``Scheduler.step()``). Whether a step is one
iteration or one epoch is the caller's choice: call ``Scheduler.step()`` that often and give the
schedule its length in the same unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from numbnn.checks import check_int
from numbnn.errors import CheckpointError, InputError


@dataclass(frozen=True)
class Constant:
    """factor(t) = 1."""

    def __call__(self, step: int) -> float:
        return 1.0


@dataclass(frozen=True)
class Cosine:
    """factor(t) = final + (1 - final) (1 + cos(pi t / T)) / 2 for t <= T, ``final`` after (SGDR without restarts)."""

    total_steps: int
    final: float = 0.0

    def __call__(self, step: int) -> float:
        progress = min(step, self.total_steps) / self.total_steps
        return self.final + (1.0 - self.final) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class LinearToZero:
    """factor(t) = max(0, 1 - t / T): ReActNet's ``LambdaLR(lambda e: 1 - e / epochs)``.

    ReActNet steps it at the *start* of each epoch, so its first epoch already runs at 1 - 1/epochs and
    its last at 0. PokeBNN's "decay to 0 at epoch 750 of 800, then hold" is T = 750 run for 800 steps.
    """

    total_steps: int

    def __call__(self, step: int) -> float:
        return max(0.0, 1.0 - step / self.total_steps)


@dataclass(frozen=True)
class Warmup:
    """Linear warm-up over ``steps`` steps, then ``schedule`` from its own step 0.

    factor(t) = (t + 1) / (steps + 1) * schedule(0) for t < steps, else schedule(t - steps); so the ramp
    never reaches zero and joins the wrapped schedule without a jump. Total length = steps + the schedule's.
    """

    schedule: object
    steps: int

    def __call__(self, step: int) -> float:
        if step < self.steps:
            return (step + 1) / (self.steps + 1) * self.schedule(0)
        return self.schedule(step - self.steps)


def constant() -> Constant:
    """The learning rate stays at its base value."""
    return Constant()


def cosine(total_steps: int, final: float = 0.0) -> Cosine:
    """Cosine annealing from 1 to ``final`` (a fraction of the base rate) over ``total_steps``."""
    if not 0.0 <= final <= 1.0:
        raise InputError(f"final must be in [0, 1], got {final}")
    return Cosine(check_int(total_steps, "total_steps"), float(final))


def linear_to_zero(total_steps: int) -> LinearToZero:
    """Linear decay from 1 to 0 over ``total_steps``, then 0."""
    return LinearToZero(check_int(total_steps, "total_steps"))


def warmup(schedule, steps: int) -> Warmup:
    """Prefix ``schedule`` with a linear warm-up of ``steps`` steps."""
    if not callable(schedule):
        raise InputError(f"schedule must be a callable step -> factor, got {schedule!r}")
    return Warmup(schedule, check_int(steps, "steps", minimum=0))


class Scheduler:
    """Sets every group's ``lr`` to ``base_lr * schedule(t)``; ``step()`` advances t by one.

    The base rates are the groups' rates when the scheduler is built; construction applies t = 0.
    """

    def __init__(self, optimizer, schedule):
        if not callable(schedule):
            raise InputError(f"schedule must be a callable step -> factor, got {schedule!r}")
        self.optimizer = optimizer
        self.schedule = schedule
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.step_count = 0
        self._apply()

    @property
    def lr(self) -> float:
        """The first group's current learning rate."""
        return self.optimizer.lr

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def _apply(self) -> None:
        factor = float(self.schedule(self.step_count))
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def state_dict(self) -> dict:
        return {"step": self.step_count, "base_lrs": np.array(self.base_lrs, dtype=np.float64)}

    def load_state_dict(self, state_dict: dict) -> None:
        try:
            step, base_lrs = state_dict["step"], np.asarray(state_dict["base_lrs"], dtype=np.float64)
        except (KeyError, TypeError):
            raise CheckpointError("scheduler state: expected keys 'step' and 'base_lrs'") from None
        if base_lrs.shape != (len(self.optimizer.param_groups),):
            raise CheckpointError(
                f"scheduler state: {base_lrs.size} base rates saved, optimizer has "
                f"{len(self.optimizer.param_groups)} groups"
            )
        self.step_count = int(step)
        self.base_lrs = [float(v) for v in base_lrs]
        self._apply()
