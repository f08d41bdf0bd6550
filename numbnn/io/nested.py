"""Nested Python state <-> one HDF5 group, exactly: dicts, lists, tuples, scalars, strings, None, arrays.

Optimizer, scheduler and RNG states are trees of dicts whose leaves are Python scalars, strings, lists
and numpy arrays. They are stored without pickle, so reading a file can only ever produce data:

- a dict is a group; its keys, in order, are the JSON list in the group attribute ``.keys``;
- a numpy array is a dataset (``.kind`` = "array"), a numpy scalar a 0-d dataset ("scalar"),
  ``bytes`` a uint8 dataset ("bytes"); values, dtypes and shapes are kept exactly (byte order
  becomes native);
- None, bool, int, float (nan/inf included), str and lists of those are JSON in an attribute of the
  parent group (a string dataset, ``.kind`` = "json", when longer than 16 kB); JSON keeps Python ints
  of any size and floats bit-exactly (a NaN stays NaN, its sign and payload are not kept);
- other lists and every tuple are groups (``.kind`` = "list"/"tuple") with items "0", "1", ...

A key becomes an HDF5 name with ``%``, ``/`` and NUL percent-escaped, and a leading ``.`` too (so
"." and ".." stay ordinary keys and no key can clash with the ``.keys``/``.kind`` markers).
"""

from __future__ import annotations

import json
import re

import h5py
import numpy as np

from numbnn.errors import CheckpointError, InputError, NumbnnError

KEYS_ATTR = ".keys"
KIND_ATTR = ".kind"
JSON_ATTR_LIMIT = 16 * 1024
_ESCAPED = re.compile(r"%([0-9A-F]{2})")


def escape_name(key: str) -> str:
    """The HDF5 link name for a dict key (reversible with :func:`unescape_name`)."""
    name = key.replace("%", "%25").replace("/", "%2F").replace("\0", "%00")
    return "%2E" + name[1:] if name.startswith(".") else name


def unescape_name(name: str) -> str:
    return _ESCAPED.sub(lambda match: chr(int(match.group(1), 16)), name)


def write_nested(group: h5py.Group, mapping: dict, where: str = "") -> None:
    """Store ``mapping`` in ``group`` (which should be empty); raises InputError naming an unstorable entry."""
    if not isinstance(mapping, dict):
        raise InputError(f"{where or group.name}: expected a dict, got {type(mapping).__name__}")
    for key in mapping:
        if not isinstance(key, str) or not key:
            raise InputError(f"{where or group.name}: keys must be non-empty strings, got {key!r}")
    group.attrs[KEYS_ATTR] = json.dumps(list(mapping))
    for key, value in mapping.items():
        _write_value(group, escape_name(key), value, f"{where}/{key}")


def _write_value(group: h5py.Group, name: str, value, where: str) -> None:
    if isinstance(value, dict):
        write_nested(_subgroup(group, name, "dict"), value, where)
    elif isinstance(value, np.ndarray):
        _dataset(group, name, _storable_array(value, where), "array")
    elif isinstance(value, np.generic):
        _dataset(group, name, _storable_array(np.asarray(value), where), "scalar")
    elif isinstance(value, bytes | bytearray):
        _dataset(group, name, np.frombuffer(bytes(value), dtype=np.uint8), "bytes")
    elif _is_json(value):
        text = json.dumps(value)
        if len(text) <= JSON_ATTR_LIMIT:
            group.attrs[name] = text
        else:
            _dataset(group, name, np.array(text, dtype=h5py.string_dtype()), "json")
    elif isinstance(value, list | tuple):
        kind = "list" if isinstance(value, list) else "tuple"
        write_nested(_subgroup(group, name, kind), {str(i): item for i, item in enumerate(value)}, where)
    else:
        raise InputError(f"{where}: cannot store a value of type {type(value).__name__}")


def _subgroup(group: h5py.Group, name: str, kind: str) -> h5py.Group:
    sub = group.create_group(name, track_order=True)
    sub.attrs[KIND_ATTR] = kind
    return sub


def _dataset(group: h5py.Group, name: str, data: np.ndarray, kind: str) -> None:
    group.create_dataset(name, data=data).attrs[KIND_ATTR] = kind


def _storable_array(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype.kind not in "biufcS" or array.dtype.hasobject:
        raise InputError(f"{where}: arrays of dtype {array.dtype} cannot be stored (numbers, bools, bytes only)")
    return _native(array)


def _native(array: np.ndarray) -> np.ndarray:
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _is_json(value) -> bool:
    """True for None/bool/int/float/str and lists of them (exact types: numpy scalars are not JSON here)."""
    if value is None or type(value) in (bool, int, float, str):
        return True
    return type(value) is list and all(_is_json(item) for item in value)


def read_nested(group: h5py.Group):
    """The dict (or list/tuple, by the group's ``.kind``) that :func:`write_nested` stored in ``group``.

    A malformed group raises CheckpointError naming the entry; nothing in the file is ever executed.
    """
    try:
        return _read_group(group)
    except NumbnnError:
        raise
    except Exception as error:  # a hostile file can provoke any h5py/json error: report, never crash
        raise CheckpointError(f"{group.file.filename}: malformed entry under {group.name}: {error}") from error


def _read_group(group: h5py.Group):
    kind = _text_attr(group, KIND_ATTR, default="dict")
    keys = json.loads(_text_attr(group, KEYS_ATTR))
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise CheckpointError(f"{group.file.filename}: {group.name} has a malformed key list")
    values = {key: _read_value(group, key) for key in keys}
    if kind == "dict":
        return values
    if kind in ("list", "tuple"):
        if keys != [str(i) for i in range(len(keys))]:
            raise CheckpointError(f"{group.file.filename}: {group.name} is a {kind} with keys {keys[:5]}...")
        items = list(values.values())
        return items if kind == "list" else tuple(items)
    raise CheckpointError(f"{group.file.filename}: {group.name} has unknown kind {kind!r}")


def _read_value(group: h5py.Group, key: str):
    name = escape_name(key)
    link = group.get(name, getlink=True)
    if link is None:
        if name not in group.attrs:
            raise CheckpointError(f"{group.file.filename}: {group.name} lists {key!r} but has no such entry")
        return json.loads(_text_attr(group, name))
    if not isinstance(link, h5py.HardLink):
        raise CheckpointError(f"{group.file.filename}: {group.name}/{name} is a {type(link).__name__}, not data")
    item = group[name]
    if isinstance(item, h5py.Group):
        return _read_group(item)
    kind = _text_attr(item, KIND_ATTR)
    if kind == "json":
        return json.loads(item.asstr()[()])
    if item.dtype.kind not in "biufcS" or item.dtype.hasobject:
        raise CheckpointError(f"{group.file.filename}: {item.name} has unsupported dtype {item.dtype}")
    data = _native(np.asarray(item[()], dtype=item.dtype))
    if kind == "array":
        return data
    if kind == "scalar":
        return data[()]
    if kind == "bytes":
        return np.asarray(data, dtype=np.uint8).tobytes()
    raise CheckpointError(f"{group.file.filename}: {item.name} has unknown kind {kind!r}")


def _text_attr(obj, name: str, default: str | None = None) -> str:
    if name not in obj.attrs:
        if default is not None:
            return default
        raise CheckpointError(f"{obj.file.filename}: {obj.name} lacks the attribute {name!r}")
    value = obj.attrs[name]
    if not isinstance(value, str):
        raise CheckpointError(f"{obj.file.filename}: attribute {name!r} of {obj.name} is not a string")
    return value
