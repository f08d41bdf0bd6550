"""One run's settings -> a :class:`Run`: the model and its constructor arguments and the training settings
checked against the model registry and :class:`~numbnn.train.TrainConfig`, every default filled in, and the
run's key, the hash of the result."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass

from numbnn.errors import InputError, UnknownModelError
from numbnn.sweep.hashing import config_hash, plain_value


def train_fields() -> dict:
    """TrainConfig's fields by name."""
    from numbnn.train.config import TrainConfig  # deferred: the training stack is slow to import (start-up time)

    return {field.name: field for field in dataclasses.fields(TrainConfig)}


@dataclass(frozen=True)
class Run:
    """One training run: what to build and how to train it, every default filled in, and its key."""

    key: str
    label: str
    model: str
    model_args: dict
    train: dict

    @property
    def config(self) -> dict:
        """The normalised configuration the key is the hash of."""
        return {"model": self.model, "model_args": self.model_args, "train": self.train}

    def as_dict(self) -> dict:
        """Plain data for a Dask task and for ``metrics.json``."""
        return {"key": self.key, "label": self.label, **self.config}


def normalise_run(settings: dict, where: str, label: str) -> Run:
    """Fill in every default and build the :class:`Run` (its key hashes the result)."""
    from numbnn.models import model_spec  # deferred: the models are slow to import (start-up time)

    if "model" not in settings:
        raise InputError(f"{where}: no model; set `model` in [defaults], [grid] or the run")
    try:
        spec = model_spec(settings["model"])
    except UnknownModelError as error:
        raise UnknownModelError(f"{where}: {error}") from None
    model_args = _normalise_model_args(spec, settings.get("model_args", {}), where)
    train_options = {key: value for key, value in settings.items() if key not in ("model", "model_args", "label")}
    train = _normalise_train(spec.name, train_options, where)
    run_config = {"model": spec.name, "model_args": model_args, "train": train}
    return Run(config_hash(run_config), label, spec.name, model_args, train)


def _normalise_model_args(spec, args: dict, where: str) -> dict:
    """Every constructor argument, defaults included, each as its declared type (numbnn.models.model_args)."""
    from numbnn.models.model_args import check_model_args  # deferred: imports every model (start-up time)

    parameters = inspect.signature(spec.constructor).parameters
    values = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
    values.update(check_model_args(spec.name, args, f"{where}.model_args"))
    return plain_value(values, f"{where}.model_args")


def _normalise_train(model: str, options: dict, where: str) -> dict:
    """The full TrainConfig (model recipe, then ``options``) as a dict, float settings as floats."""
    from numbnn.train.config import make_config  # deferred: the training stack is slow to import (start-up time)

    try:
        values = make_config(model, **options).to_dict()
    except InputError as error:
        raise InputError(f"{where} ({model}): {error}") from None
    for name, field in train_fields().items():
        value = values[name]
        if _is_float_field(field) and isinstance(value, int) and not isinstance(value, bool):
            values[name] = float(value)
    return plain_value(values, f"{where}.train")


def _is_float_field(field) -> bool:
    kind = field.type  # a type, or its text under postponed annotations
    return kind is float or float in typing.get_args(kind) or (isinstance(kind, str) and "float" in kind)
