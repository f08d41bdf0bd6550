"""Sweep specifications: a TOML file -> the validated, normalised list of training runs it describes.

Format (``examples/sweep_*.toml``; every table is optional, but each run must end up with a model)::

    name = "pokebnn-clip"                 # title of tables and plots
    description = "PokeBNN's clipping bound B"

    [defaults]                            # every run starts from these
    model = "pokebnn"
    epochs = 10
    [defaults.model_args]
    widths = [32, 64, 128]

    [grid]                                # cartesian product: each key holds a list of values
    seed = [0, 1]
    [grid.model_args]
    clip = [1.0, 2.0, 3.0, 4.0]

    [[runs]]                              # an explicit list; crossed with every grid point when both exist
    model = "ftbnn"
    label = "FTBNN, 1 group"              # name in tables and plots (default: model + the keys it sets),
                                          # followed by the grid point's keys
    model_args = { groups = 1 }

    [[claims]]                            # a paper's claim: two arms (labels without seed=N) and a direction
    name = "group execution beats the baseline"
    source = "FTBNN, arXiv 2010.09294, abstract"
    arm = "FTBNN, 4 groups"
    baseline = "FTBNN, 1 group"
    expect = "higher"                     # metric: test_accuracy unless set (numbnn.sweep.claims)

A run's keys: ``model`` (a registry name), ``model_args`` (constructor arguments of the model, e.g.
``widths``, ``groups``, ``clip``), ``label`` (runs only) and any training setting of
:class:`numbnn.train.TrainConfig` (``epochs``, ``lr``, ``batch_size``, ``seed``, ``limit``, ``test_limit``,
``recipe``, ...). Precedence, later winning: the model's own recipe, ``[defaults]``, the grid point and
the run entry (which may not set the same key), then overrides (``numbnn sweep --set KEY=VALUE``).

Validation happens before anything runs: unknown keys (with the closest known name) and wrong types are
checked here, unknown models, unknown model arguments and invalid training settings when each run's settings
become a :class:`~numbnn.sweep.runs.Run` (:mod:`numbnn.sweep.runs`); all are :class:`InputError`s naming
the table and key. Values a model's constructor rejects (e.g. widths it cannot build) surface when the
run starts and are recorded as that run's failure, so the other runs go on.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from numbnn.errors import InputError
from numbnn.sweep.arms import arm_key, arm_label
from numbnn.sweep.claims import Claim, parse_claims
from numbnn.sweep.runs import Run, normalise_run, train_fields

TOP_LEVEL_KEYS = ("name", "description", "defaults", "grid", "runs", "claims")


@dataclass(frozen=True)
class Sweep:
    name: str
    description: str
    runs: list[Run]
    source: str
    overrides: dict = dataclasses.field(default_factory=dict)  # the --set values applied on top of the spec
    claims: list[Claim] = dataclasses.field(default_factory=list)  # [[claims]], checked against the arms


def load_spec(path, overrides: dict | None = None) -> Sweep:
    """Read and validate the TOML spec at ``path``; ``overrides`` (see :func:`parse_overrides`) win last."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"sweep spec: no such file {str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"sweep spec {str(path)!r}: cannot read it: {error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"sweep spec {str(path)!r}: invalid TOML: {error}") from None
    return parse_spec(data, source=str(path), default_name=path.stem, overrides=overrides)


def parse_spec(data: dict, *, source: str = "spec", default_name: str = "sweep", overrides: dict | None = None) -> Sweep:
    """Validate a parsed spec and expand it into runs (module docstring)."""
    _reject_unknown(data, TOP_LEVEL_KEYS, "the spec's top level")
    name = _string(data.get("name", default_name), "name")
    description = _string(data.get("description", ""), "description")
    defaults = _settings(data.get("defaults", {}), "defaults", allow_label=False)
    grid = _grid_points(data.get("grid"))
    entries = data.get("runs")
    if entries is not None and (not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries)):
        raise InputError("runs: must be an array of tables ([[runs]] sections)")
    if grid is None and not entries:
        raise InputError("the spec describes no runs: add a [grid] table or [[runs]] sections")
    runs_given = [(f"runs[{i}]", _settings(entry, f"runs[{i}]", allow_label=True)) for i, entry in enumerate(entries or [])]
    overrides = _settings(overrides or {}, "overrides", allow_label=False)

    combined = []
    for (grid_where, point), (run_where, entry) in itertools.product(grid or [("", {})], runs_given or [("", {})]):
        where = " ".join(part for part in (run_where, grid_where) if part)
        _reject_conflicts(point, entry, where)
        chosen = _merge(point, entry)
        settings = _merge(defaults, chosen)
        combined.append((where, _label(settings.get("model", "?"), entry, point), _merge(settings, overrides)))

    runs, seen = [], {}
    for where, label, settings in combined:
        run = normalise_run(settings, where, label)
        if run.key in seen:
            raise InputError(f"{where} is the same configuration as {seen[run.key]} (key {run.key}); remove one of them")
        seen[run.key] = where
        runs.append(run)
    claims = parse_claims(data.get("claims"), _arm_labels(runs))
    return Sweep(name, description, runs, source, overrides, claims)


def parse_overrides(pairs: list[str]) -> dict:
    """``["epochs=1", "model_args.clip=2"]`` -> ``{"epochs": 1, "model_args": {"clip": "2"}}``.

    The KEY=VALUE split is the one every command uses (:func:`numbnn.models.model_args.split_pair`).
    A training setting's value is read as a TOML value when it parses (``2000``, ``1e-3``, ``true``),
    otherwise kept as text (``two-step``); a model argument's text is read later, per run, against the
    argument's declared type (``model_args.binary_weights=false`` is False). Only training settings
    and ``model_args.NAME`` can be overridden.
    """
    from numbnn.models.model_args import split_pair  # deferred: imports every model (start-up time)

    overrides: dict = {}
    for pair in pairs:
        key, text = split_pair(pair, "--set")
        if key.startswith("model_args."):
            overrides.setdefault("model_args", {})[key.removeprefix("model_args.")] = text
        elif key in ("model", "label", "model_args"):
            raise InputError(f"--set {key}: only training settings and model_args.NAME can be overridden")
        else:
            try:
                overrides[key] = tomllib.loads(f"value = {text}")["value"]
            except tomllib.TOMLDecodeError:
                overrides[key] = text
    return overrides


# -- validation ------------------------------------------------------------------------------------------------


def _arm_labels(runs: list[Run]) -> list[str]:
    """One label per arm (runs equal but for the seed), as :func:`numbnn.sweep.arms.arm_label` names it."""
    labels = {}
    for run in runs:
        labels.setdefault(arm_key(run.config), arm_label(run.label))
    return list(labels.values())


def _string(value, where: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where}: must be a string, got {value!r}")
    return value


def _reject_unknown(table: dict, known, where: str) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(known))})"
            raise InputError(f"{where}: unknown key {key!r}{hint}")


def _settings(table, where: str, *, allow_label: bool) -> dict:
    """Check one run-like table (``[defaults]``, a ``[[runs]]`` entry, overrides) and return a copy."""
    if not isinstance(table, dict):
        raise InputError(f"{where}: must be a table, got {table!r}")
    known = set(train_fields()) | {"model", "model_args"} | ({"label"} if allow_label else set())
    _reject_unknown(table, known, where)
    if "model" in table:
        _string(table["model"], f"{where}.model")
    if "label" in table:
        _string(table["label"], f"{where}.label")
    if not isinstance(table.get("model_args", {}), dict):
        raise InputError(f"{where}.model_args: must be a table of constructor arguments, got {table['model_args']!r}")
    return {key: (dict(value) if key == "model_args" else value) for key, value in table.items()}


def _grid_points(grid) -> list[tuple[str, dict]] | None:
    """The cartesian product of ``[grid]`` as ``(where, settings)`` pairs, in the order the keys appear."""
    if grid is None:
        return None
    _settings(grid, "grid", allow_label=False)
    axes = [((key,), values) for key, values in grid.items() if key != "model_args"]
    axes += [(("model_args", key), values) for key, values in grid.get("model_args", {}).items()]
    if not axes:
        raise InputError("grid: is empty; give each swept key a list of values")
    for path, values in axes:
        if not isinstance(values, list) or not values:
            raise InputError(f"grid.{'.'.join(path)}: must be a non-empty list of values, got {values!r}")
        if path == ("model",):
            for value in values:
                _string(value, "grid.model")
    points = []
    for choice in itertools.product(*(values for _, values in axes)):
        point: dict = {}
        for (path, _), value in zip(axes, choice):
            if len(path) == 2:
                point.setdefault("model_args", {})[path[1]] = value
            else:
                point[path[0]] = value
        where = "grid point (" + ", ".join(f"{path[-1]}={_show(value)}" for (path, _), value in zip(axes, choice)) + ")"
        points.append((where, point))
    return points


def _reject_conflicts(point: dict, entry: dict, where: str) -> None:
    both = [key for key in point if key != "model_args" and key in entry]
    both += [f"model_args.{key}" for key in point.get("model_args", {}) if key in entry.get("model_args", {})]
    if both:
        raise InputError(f"{where}: {both[0]} is set by both the grid and the run; set it in one place")


def _merge(base: dict, top: dict) -> dict:
    merged = {**base, **top}
    if "model_args" in base or "model_args" in top:
        merged["model_args"] = {**base.get("model_args", {}), **top.get("model_args", {})}
    return merged


def _show(value) -> str:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) else str(value)


def _label(model: str, entry: dict, point: dict) -> str:
    """The run's ``label`` (default: the model and what the run entry sets), then what the grid point sets."""
    parts = [entry["label"]] if "label" in entry else [model, *_describe(entry)]
    return " ".join(parts + _describe(point))


def _describe(settings: dict) -> list[str]:
    """``key=value`` for each setting, model arguments last (model and label left out)."""
    parts = [f"{key}={_show(value)}" for key, value in settings.items() if key not in ("model", "model_args", "label")]
    return parts + [f"{key}={_show(value)}" for key, value in settings.get("model_args", {}).items()]
