"""Training checkpoints: one HDF5 file holds everything needed to rebuild a model and resume training.

Layout (format "numbnn-checkpoint", version 1)::

    (512-byte user block: size and sha256 of the file, see numbnn.io.hdf5)
    /                 attrs: format, format_version, numbnn_version, created,
                             config (JSON: {"name": ..., "args": {...}}), epoch (if given)
    /state            one dataset per state-dict entry, named by its dotted module path
                      ("blocks.0.conv.weight"; see numbnn.io.nested for the few escaped characters)
    /optimizer        optimizer.state_dict(), nested (numbnn.io.nested)       -- only if given
    /scheduler        scheduler.state_dict(), nested                           -- only if given
    /rng              np.random.Generator's bit_generator.state, nested        -- only if given
    /history          JSON string dataset: list of per-epoch metric dicts      -- only if given
    /extra            JSON string dataset: a dict of anything JSON-able        -- only if given
    /arrays           named arrays or bytes (e.g. an xgboost model's JSON)     -- only if given

Loading verifies the file's size and checksum before HDF5 parses it (see :mod:`numbnn.io.hdf5`), then
that the state matches the rebuilt model name by name, shape and dtype. Nothing is unpickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from numbnn.errors import CheckpointError, InputError
from numbnn.io.hdf5 import atomic_h5, open_numbnn_file, reading_errors, write_header
from numbnn.io.nested import read_nested, write_nested

FORMAT = "numbnn-checkpoint"
FORMAT_VERSION = 1
# Bit generators a stored RNG state may name (looked up in this table, never by attribute name).
BIT_GENERATORS = {cls.__name__: cls for cls in (np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937,
                                                np.random.Philox, np.random.SFC64)}


@dataclass
class Checkpoint:
    """Everything a checkpoint file holds, as plain Python and numpy values."""

    config: dict
    state: dict[str, np.ndarray]
    optimizer_state: dict | None = None
    scheduler_state: dict | None = None
    rng_state: dict | None = None
    epoch: int | None = None
    history: list | None = None
    extra: dict | None = None
    arrays: dict[str, np.ndarray | bytes] = field(default_factory=dict)
    numbnn_version: str = ""
    format_version: int = FORMAT_VERSION
    created: str = ""


def save(model, path, *, optimizer=None, scheduler=None, rng=None, epoch=None, history=None, extra=None,
         arrays=None) -> Path:
    """Write ``model`` (its config and state dict) and optional training state to ``path``, atomically.

    ``optimizer``/``scheduler``: objects with ``state_dict()``; ``rng``: an ``np.random.Generator`` (or
    its ``bit_generator.state`` dict); ``history``: list of per-epoch metric dicts; ``extra``: a
    JSON-able dict; ``arrays``: name -> ndarray or bytes, added to what the model's own
    ``checkpoint_arrays()`` returns, if it has that method. A failure leaves any previous file intact.
    """
    config = _model_config(model)
    state = _model_state(model)
    own_arrays = getattr(model, "checkpoint_arrays", None)  # e.g. ReActXGB's trees (see load)
    if own_arrays is not None:
        arrays = {**own_arrays(), **(arrays or {})} or None
    sections = {
        "optimizer": _state_of(optimizer, "optimizer"),
        "scheduler": _state_of(scheduler, "scheduler"),
        "rng": _rng_state(rng),
        "arrays": _arrays(arrays),
    }
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0):
        raise InputError(f"epoch must be a non-negative integer or None, got {epoch!r}")
    if history is not None and not isinstance(history, list):
        raise InputError(f"history must be a list of per-epoch dicts, got {type(history).__name__}")
    if extra is not None and not isinstance(extra, dict):
        raise InputError(f"extra must be a dict, got {type(extra).__name__}")
    texts = {"history": _json(history, "history"), "extra": _json(extra, "extra")}

    path = Path(path)
    with atomic_h5(path) as file:
        write_header(file, FORMAT, FORMAT_VERSION)
        file.attrs["config"] = config
        if epoch is not None:
            file.attrs["epoch"] = int(epoch)
        write_nested(file.create_group("state", track_order=True), state, "state")
        for name, value in sections.items():
            if value is not None:
                write_nested(file.create_group(name, track_order=True), value, name)
        for name, text in texts.items():
            if text is not None:
                file.create_dataset(name, data=text, dtype=h5py.string_dtype())
    return path


def load_checkpoint(path) -> Checkpoint:
    """Read and validate every part of a checkpoint (no model is built)."""
    with open_numbnn_file(path, FORMAT, FORMAT_VERSION) as (file, version):
        if "state" not in file or not isinstance(file["state"], h5py.Group):
            raise CheckpointError(f"{path}: required group /state is missing")
        state = read_nested(file["state"])
        for name, array in state.items():
            if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
                raise CheckpointError(f"{path}: state entry {name!r} is not a numeric array")
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise CheckpointError(f"{path}: state entry {name!r} holds NaN or inf values")
        epoch = file.attrs.get("epoch")
        if epoch is not None and not isinstance(epoch, np.integer):
            raise CheckpointError(f"{path}: epoch attribute is not an integer")
        return Checkpoint(
            config=_parse_config(file.attrs.get("config"), path),
            state=state,
            optimizer_state=_optional_group(file, "optimizer", path),
            scheduler_state=_optional_group(file, "scheduler", path),
            rng_state=_optional_group(file, "rng", path),
            epoch=None if epoch is None else int(epoch),
            history=_optional_json(file, "history", list, path),
            extra=_optional_json(file, "extra", dict, path),
            arrays=_optional_group(file, "arrays", path) or {},
            numbnn_version=str(file.attrs.get("numbnn_version", "")),
            format_version=version,
            created=str(file.attrs.get("created", "")),
        )


def load(path, builder=None):
    """Rebuild the model stored at ``path`` and load its weights.

    ``builder(config) -> model`` defaults to :func:`numbnn.models.build_model`. The file's state must
    name exactly the model's parameters and buffers, with the same shapes and dtypes.
    A model with a ``load_checkpoint_arrays(arrays)`` method receives the ``/arrays`` group (the
    counterpart of its ``checkpoint_arrays()``, which :func:`save` stores).
    """
    checkpoint = load_checkpoint(path)
    if builder is None:
        # deferred: packed-model loading imports numbnn.io and must not pay for numba (start-up time)
        from numbnn.models import build_model as builder
    try:
        model = builder(checkpoint.config)
    except Exception as error:  # unknown name, bad args: the file does not describe a buildable model
        raise CheckpointError(f"{path}: cannot rebuild model {checkpoint.config['name']!r}: {error}") from error
    check_state_matches(model.state_dict(), checkpoint.state, path)
    model.load_state_dict(checkpoint.state, strict=True)
    restore_arrays = getattr(model, "load_checkpoint_arrays", None)
    if restore_arrays is not None:  # a model that keeps more than weights (ReActXGB's trees) reads /arrays
        with reading_errors(path):
            restore_arrays(checkpoint.arrays)
    return model


def check_state_matches(expected: dict, found: dict, path) -> None:
    """Raise CheckpointError naming the first entry whose presence, shape or dtype differ."""
    for name, target in expected.items():
        if name not in found:
            raise CheckpointError(f"{path}: parameter {name!r} of the model is missing from the file")
        array = found[name]
        if array.shape != target.shape:
            raise CheckpointError(f"{path}: parameter {name!r} has shape {array.shape} in the file, "
                                  f"the model expects {target.shape}")
        if array.dtype != target.dtype:
            raise CheckpointError(f"{path}: parameter {name!r} has dtype {array.dtype} in the file, "
                                  f"the model expects {target.dtype}")
    for name in found:
        if name not in expected:
            raise CheckpointError(f"{path}: the file has parameter {name!r}, which the model does not")


def restore_rng(state: dict) -> np.random.Generator:
    """A Generator in exactly the stored state (same next numbers as the one that was saved)."""
    try:
        bit_generator = BIT_GENERATORS[state["bit_generator"]]()
        bit_generator.state = state
    except Exception as error:  # a crafted state can provoke any error numpy's setter raises
        raise CheckpointError(f"invalid RNG state ({type(error).__name__}: {error})") from None
    return np.random.Generator(bit_generator)


# -- saving helpers -----------------------------------------------------------------------------------------


def _model_config(model) -> str:
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or not isinstance(config.get("name"), str) or not isinstance(
        config.get("args", {}), dict
    ):
        raise InputError("model: needs a .config dict {'name': str, 'args': {...}} (build it with build_model)")
    try:
        return json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InputError(f"model: config is not JSON-serialisable: {error}") from None


def _model_state(model) -> dict:
    state = model.state_dict()
    for name, array in state.items():
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
            raise InputError(f"model: state entry {name!r} is not a numeric numpy array")
    return state


def _state_of(obj, what: str):
    if obj is None:
        return None
    if not hasattr(obj, "state_dict"):
        raise InputError(f"{what}: needs a state_dict() method, got {type(obj).__name__}")
    return obj.state_dict()


def _rng_state(rng):
    if rng is None:
        return None
    if isinstance(rng, np.random.Generator):
        return rng.bit_generator.state
    if isinstance(rng, dict) and rng.get("bit_generator") in BIT_GENERATORS:
        return rng
    raise InputError(f"rng: expected an np.random.Generator or its bit_generator.state, got {type(rng).__name__}")


def _arrays(arrays):
    if arrays is None:
        return None
    if not isinstance(arrays, dict):
        raise InputError(f"arrays: expected a dict name -> ndarray or bytes, got {type(arrays).__name__}")
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray | bytes | bytearray):
            raise InputError(f"arrays: {name!r} is a {type(value).__name__}, expected an ndarray or bytes")
    return arrays


def _json(value, what: str) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, default=_numpy_scalar)
    except (TypeError, ValueError) as error:
        raise InputError(f"{what}: not JSON-serialisable: {error}") from None


def _numpy_scalar(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


# -- loading helpers ----------------------------------------------------------------------------------------


def _parse_config(text, path) -> dict:
    try:
        config = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        config = None
    if not isinstance(config, dict) or not isinstance(config.get("name"), str) or not isinstance(
        config.setdefault("args", {}), dict
    ):
        raise CheckpointError(f"{path}: missing or malformed model config (expected JSON {{'name', 'args'}})")
    return config


def _optional_group(file: h5py.File, name: str, path):
    if name not in file:
        return None
    if not isinstance(file[name], h5py.Group):
        raise CheckpointError(f"{path}: /{name} should be a group")
    return read_nested(file[name])


def _optional_json(file: h5py.File, name: str, kind: type, path):
    if name not in file:
        return None
    item = file[name]
    if not isinstance(item, h5py.Dataset) or not h5py.check_string_dtype(item.dtype) or item.shape != ():
        raise CheckpointError(f"{path}: /{name} should be a JSON string dataset")
    value = json.loads(item.asstr()[()])
    if not isinstance(value, kind):
        raise CheckpointError(f"{path}: /{name} should hold a JSON {kind.__name__}")
    return value
