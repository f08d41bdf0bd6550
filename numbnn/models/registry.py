"""Model registry: names -> constructors, and rebuilding a model from its stored config.

A model's config is ``{"name": <registry name>, "args": {<constructor keyword arguments>}}``. It is
JSON, stored in every checkpoint, and enough to rebuild the architecture before loading weights.
"""

import difflib
import inspect
from dataclasses import dataclass
from typing import Callable

from numbnn.errors import InputError, NumbnnError, UnknownModelError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    constructor: Callable
    summary: str
    paper: str


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, summary: str, paper: str = ""):
    """Class decorator: make a model buildable as ``build_model({"name": name, "args": {...}})``."""

    def decorate(constructor):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(name, constructor, summary, paper)
        return constructor

    return decorate


def available_models() -> list[ModelSpec]:
    """Every registered model, sorted by name."""
    _import_model_modules()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def model_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; an unknown name suggests the closest registered one."""
    _import_model_modules()
    if name not in _REGISTRY:
        by_lower = {known.lower(): known for known in _REGISTRY}  # "FTBNN" finds "ftbnn"
        close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
        hint = f"; did you mean {by_lower[close[0]]!r}?" if close else ""
        raise UnknownModelError(f"unknown model {name!r}{hint} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]


def build_model(config_or_name, **args):
    """Build a model from a config dict ``{"name", "args"}`` or from a name plus keyword arguments.

    The built model carries ``model.config`` with every constructor argument filled in (defaults
    included), so the stored config rebuilds exactly this architecture even if defaults change.
    """
    if isinstance(config_or_name, dict):
        if "name" not in config_or_name:
            raise InputError("model config has no 'name'")
        name = config_or_name["name"]
        args = {**config_or_name.get("args", {}), **args}
    else:
        name = config_or_name
    spec = model_spec(name)
    signature = inspect.signature(spec.constructor)
    unknown = [key for key in args if key not in signature.parameters]
    if unknown:
        raise InputError(f"model {name!r} has no option {unknown[0]!r} (options: {', '.join(signature.parameters)})")
    bound = signature.bind(**args)
    bound.apply_defaults()
    try:
        model = spec.constructor(**bound.arguments)
    except NumbnnError:
        raise
    except (TypeError, ValueError) as error:  # a value of the wrong type, e.g. widths=8 or widths="abc"
        given = ", ".join(f"{key}={value!r}" for key, value in args.items())
        raise InputError(f"model {name!r} cannot be built with {given}: {error}") from None
    model.config = {"name": name, "args": dict(bound.arguments)}
    return model


def _import_model_modules() -> None:
    """Import every model module so that their @register_model decorators run."""
    import numbnn.models  # noqa: F401  (its __init__ imports each paper's module)
