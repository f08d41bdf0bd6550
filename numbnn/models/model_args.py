"""Model arguments from the command line or a sweep spec, read against each argument's declared type.

One parser for ``train --model-arg``, ``summary --model-arg`` and ``sweep --set model_args.NAME``:
``binary_weights=False`` must mean False (the text "False" is a true value in Python), ``=maybe`` is
refused, ``widths=16,32`` and ``widths=[16,32]`` are the same list. A constructor argument's kind comes
from its annotation, else from its default's type (``widths=(32, 64)`` -> a list of integers).

Values from TOML or JSON arrive typed; text from a command line is parsed. Both end up checked the same
way, and a model that could never fit in memory is refused with the figure before anything allocates.
"""

from __future__ import annotations

import difflib
import inspect
import json
import math
import os

from numbnn.errors import InputError
from numbnn.models.registry import model_spec

BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
INTS = "list of integers"
TRAINING_BATCH = 128  # the batch the memory estimate assumes (the default of TrainConfig)
BYTES_PER_PARAMETER = 16  # float32 weight, gradient and two Adam moments


def split_pair(text: str, option: str) -> tuple[str, str]:
    """``"key=value"`` -> ``("key", "value")`` (key stripped); anything else is an InputError."""
    key, sep, value = str(text).partition("=")
    key = key.strip()
    if not sep or not key:
        raise InputError(f"{option} expects KEY=VALUE, got {text!r}")
    return key, value.strip()


def parse_pairs(pairs, option: str) -> dict[str, str]:
    """Repeated ``KEY=VALUE`` options -> ``{key: text}``; a key given twice with different values is refused."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, text = split_pair(pair, option)
        if key in values and values[key] != text:
            raise InputError(f"{option} {key} is given twice ({values[key]!r} and {text!r})")
        values[key] = text
    return values


def argument_kinds(model_name: str) -> dict:
    """Each constructor argument of ``model_name`` -> bool, int, float, str, INTS or None (unknown kind)."""
    parameters = inspect.signature(model_spec(model_name).constructor).parameters
    return {name: _kind(p) for name, p in parameters.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}


def _kind(parameter: inspect.Parameter):
    annotation = parameter.annotation
    names = {"bool": bool, "int": int, "float": float, "str": str}
    if isinstance(annotation, str) and annotation in names:
        return names[annotation]
    if annotation in (bool, int, float, str):
        return annotation
    default = parameter.default
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float, str)):
        return type(default)
    if isinstance(default, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool) for v in default):
        return INTS
    return None


def check_model_args(model_name: str, args: dict, where: str = "--model-arg") -> dict:
    """``args`` (text or typed values) as the declared types of ``model_name``'s constructor; memory-checked."""
    kinds = argument_kinds(model_name)
    typed = {}
    for key, value in args.items():
        if key not in kinds:
            close = difflib.get_close_matches(key, list(kinds), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (options: {', '.join(kinds)})"
            raise InputError(f"{where}: model {model_name!r} has no argument {key!r}{hint}")
        typed[key] = coerce(value, kinds[key], f"{where} {key}")
    check_memory(model_name, typed, where)
    return typed


def _with_defaults(model_name: str, args: dict) -> dict:
    parameters = inspect.signature(model_spec(model_name).constructor).parameters
    defaults = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
    return {**defaults, **args}


def parse_model_args(model_name: str, pairs, option: str = "--model-arg") -> dict:
    """Repeated ``KEY=VALUE`` command-line options -> typed constructor arguments of ``model_name``."""
    return check_model_args(model_name, parse_pairs(pairs, option), option)


def coerce(value, kind, where: str):
    """``value`` (command-line text, or a TOML/JSON value) as ``kind``; InputError naming ``where`` if it does not fit."""
    if kind is None:  # an argument without a declared kind: JSON if it parses, else the text
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value
    if kind is str:
        if isinstance(value, str):
            return value
    elif kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
            return BOOL_WORDS[value.strip().lower()]
    elif kind is int:
        number = _integer(value)
        if number is not None:
            return number
    elif kind is float:
        number = _float(value)
        if number is not None:
            return number
    elif kind == INTS:
        items = _integers(value)
        if items is not None:
            return items
    expected = {bool: "true or false", int: "an integer", float: "a finite number", str: "text", INTS: "a list of integers"}[kind]
    raise InputError(f"{where}: expected {expected}, got {value!r}")


def _integer(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip().replace("_", ""), 10)
        except ValueError:
            return None
    return None


def _float(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _integers(value):
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                return None
        else:
            value = [part for part in text.split(",")]
    if not isinstance(value, (list, tuple)) or not value:
        return None
    items = [_integer(item) for item in value]
    return None if any(item is None for item in items) else items


# -- memory -------------------------------------------------------------------------------------------------------


def estimate_training_bytes(args: dict) -> tuple[int, int]:
    """(parameters, bytes) a model with these widths needs to train at batch TRAINING_BATCH, roughly.

    An upper-bound style estimate from the arguments alone (nothing is built): 3x3 convs between
    consecutive widths, repeated ``max(blocks)`` times, and a handful of saved activations per layer at
    full image size. It only has to tell "fits" from "could never fit", e.g. ``widths=[100000, ...]``.
    """
    widths = [w for w in args.get("widths", ()) if isinstance(w, int)]
    stem = [w for w in args.get("stem_widths", ()) if isinstance(w, int)]
    blocks = [b for b in args.get("blocks", ()) if isinstance(b, int)]
    channels = [_positive(args.get("in_channels"), 1)] + stem + widths
    repeat = max(blocks, default=1)
    params = 9 * sum(a * b for a, b in zip(channels, channels[1:])) * repeat
    classes = _positive(args.get("num_classes"), 10)
    side = _positive(args.get("image_size"), 28)
    params += max(channels) * classes * (side * side if args.get("head") == "flatten" else 1)
    activations = TRAINING_BATCH * side * side * 4 * 6 * sum(channels) * repeat
    return params, params * BYTES_PER_PARAMETER + activations


def _positive(value, default: int) -> int:
    """The estimate's stand-in for a bad size: the constructor refuses it (``check_int``), not the estimate."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def memory_limit() -> int:
    """This machine's physical memory in bytes (NUMBNN_MEMORY_LIMIT overrides, for tests and shared hosts)."""
    override = os.environ.get("NUMBNN_MEMORY_LIMIT")
    if override:
        return int(override)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40  # cannot tell: only refuse the absurd


def check_memory(model_name: str, args: dict, where: str) -> None:
    """Refuse arguments whose estimated training memory exceeds this machine's, with both figures."""
    params, needed = estimate_training_bytes(_with_defaults(model_name, args))
    limit = memory_limit()
    if needed > limit:
        given = ", ".join(f"{key}={value}" for key, value in args.items())
        raise InputError(f"{where}: model {model_name!r} with {given} would need about {_gib(needed)} to train "
                         f"(~{params:.3g} parameters), more than this machine's {_gib(limit)}")


def _gib(count: int) -> str:
    return f"{count / 2**30:,.1f} GiB"
