"""``TrainConfig``: every choice that decides a training run's result, and the per-model recipe hook.

A run's settings come from three layers, later ones winning:

1. the defaults below (ReActNet's recipe: Adam, lr 1e-3 decaying linearly to 0, weight decay only on
   conv weights, 2-pixel crop + flip);
2. the model's **recipe**: a model class may define a ``default_recipe()`` classmethod (or a plain
   ``default_recipe`` dict attribute) returning a dict whose keys are ``TrainConfig`` field names,
   e.g. ``{"lr": 5e-4, "epochs": 40, "label_smoothing": 0.1}``; unknown keys are an error, so a typo
   in a recipe fails loudly;
3. explicit options (the CLI's flags; ``None`` means "not given").

:func:`make_config` does the merge. The training loop only ever sees the resulting ``TrainConfig``, so
no model-specific knowledge lives in the loop. The config is stored as JSON in every checkpoint, which
is how ``--resume`` continues with exactly the settings the run started with.
"""

import dataclasses
import math
from dataclasses import dataclass

from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.evaluation import EVAL_BATCH_SIZE
from numbnn.models import model_spec

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("linear", "cosine", "constant")
# Which parameters weight decay applies to (the rules of numbnn.optim.split_decay): "conv_only" = 4-d
# conv kernels only (ReActNet), "ndim>1" = every kernel and weight matrix (PokeBNN), "all" = everything.
DECAY_RULES = ("conv_only", "ndim>1", "all")
# How a run trains (numbnn.train.recipes): "single" = one fit; "two-step" = ReActNet's step 1 (binary
# activations, real weights) then step 2 (all binary, initialised from step 1).
RECIPES = ("single", "two-step")
# Where a distillation teacher's soft targets come from (numbnn.train.loop): "batch" = the teacher runs on
# every augmented training batch; "once" = its softmax of every un-augmented training image, computed
# once before training (one teacher pass instead of one per epoch; a crop or flip keeps the target);
# "once-flip-averaged" = as "once", the mean of its softmax of the image and of its mirror image (a better
# teacher for free: resnet-20's test accuracy 94.06% alone, 94.45% averaged so, on an Intel Xeon).
TEACHER_TARGETS = ("batch", "once", "once-flip-averaged")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    schedule: str = "linear"  # per-iteration learning-rate schedule after warm-up
    warmup_epochs: float = 0.0
    momentum: float = 0.9  # SGD only (Nesterov)
    beta2: float = 0.999  # Adam/AdamW second-moment decay (PokeBNN uses 0.99)
    weight_decay: float = 0.0
    decay_rule: str = "conv_only"
    label_smoothing: float = 0.0
    grad_clip: float | None = None  # clip the global gradient L2 norm to this value
    crop_padding: int = 2
    flip: bool = True
    seed: int = 0
    limit: int | None = None  # use the first `limit` training images
    test_limit: int | None = None  # evaluate on the first `test_limit` test images
    eval_batch_size: int = EVAL_BATCH_SIZE
    save_every: int = 1  # write a checkpoint every this many epochs (and after the last)
    teacher: str | None = None  # checkpoint of a distillation teacher (soft cross-entropy to its softmax)
    teacher_targets: str = "batch"  # see TEACHER_TARGETS
    recipe: str = "single"  # see RECIPES
    step1_epochs: int | None = None  # two-step only: epochs of step 1 (default: half of `epochs`, rounded up)

    def __post_init__(self):
        _check_int(self, "epochs", 1)
        _check_int(self, "batch_size", 1)
        _check_int(self, "eval_batch_size", 1)
        _check_int(self, "save_every", 1)
        _check_int(self, "crop_padding", 0)
        _check_int(self, "seed", 0)
        for name in ("limit", "test_limit", "step1_epochs"):
            if getattr(self, name) is not None:
                _check_int(self, name, 1)
        _check_choice(self, "optimizer", OPTIMIZERS)
        _check_choice(self, "schedule", SCHEDULES)
        _check_choice(self, "decay_rule", DECAY_RULES)
        _check_choice(self, "recipe", RECIPES)
        _check_choice(self, "teacher_targets", TEACHER_TARGETS)
        if self.teacher is not None and (not isinstance(self.teacher, str) or not self.teacher):
            raise InputError(f"teacher must be a checkpoint path, got {self.teacher!r}")
        if not isinstance(self.flip, bool):
            raise InputError(f"flip must be true or false, got {self.flip!r}")
        _check_float(self, "lr", 0.0, strict=True)
        _check_float(self, "weight_decay", 0.0)
        _check_float(self, "warmup_epochs", 0.0)
        _check_float(self, "momentum", 0.0, upper=1.0)
        _check_float(self, "beta2", 0.0, upper=1.0, upper_open=True)
        _check_float(self, "label_smoothing", 0.0, upper=1.0, upper_open=True)
        if self.grad_clip is not None:
            _check_float(self, "grad_clip", 0.0, strict=True)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Rebuild from :meth:`to_dict` output (e.g. a checkpoint); unknown keys are an error."""
        return cls(**_known_fields(values, "training config"))

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def model_recipe(model_name: str) -> dict:
    """The registered model's ``default_recipe`` (classmethod or dict attribute), or ``{}``."""
    recipe = getattr(model_spec(model_name).constructor, "default_recipe", None)
    if recipe is None:
        return {}
    recipe = recipe() if callable(recipe) else recipe
    return dict(_known_fields(dict(recipe), f"default_recipe of model {model_name!r}"))


def make_config(model_name: str | None = None, **options) -> TrainConfig:
    """Defaults, then the model's recipe, then every option that is not ``None``."""
    values = model_recipe(model_name) if model_name is not None else {}
    values.update({key: value for key, value in _known_fields(options, "option").items() if value is not None})
    return TrainConfig(**values)


def _known_fields(values: dict, what: str) -> dict:
    names = {field.name for field in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise InputError(f"{what}: unknown training setting(s) {unknown}; known: {sorted(names)}")
    return values


def _check_int(config, name, minimum):
    check_int(getattr(config, name), name, minimum)


def _check_float(config, name, minimum, *, strict=False, upper=None, upper_open=False):
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    too_low = value <= minimum if strict else value < minimum
    too_high = upper is not None and (value >= upper if upper_open else value > upper)
    if too_low or too_high:
        low = f"> {minimum}" if strict else f">= {minimum}"
        high = "" if upper is None else (f" and < {upper}" if upper_open else f" and <= {upper}")
        raise InputError(f"{name} must be {low}{high}, got {value!r}")


def _check_choice(config, name, choices):
    value = getattr(config, name)
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
