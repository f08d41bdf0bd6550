"""A run's identity: its normalised configuration and a stable hash of it.

A run is keyed by ``config_hash(config)``: the first 16 hex digits of the SHA-256 of the configuration's
canonical JSON (keys sorted, no whitespace, tuples as lists, no NaN). The configuration is normalised
*before* hashing (every model constructor argument and every training setting filled in, integers
given for float settings written as floats), so two specs that describe the same computation in
different words (``clip = 3`` or ``clip = 3.0``, a default spelled out or left out) share a key, and
a sweep restarted from a reworded spec still finds its finished runs.
"""

import hashlib
import json
import math

from numbnn.errors import InputError

HASH_LENGTH = 16  # hex digits: 64 bits, far from collisions for any sweep of realistic size


def plain_value(value, where: str = "value"):
    """``value`` as plain JSON data: tuples -> lists, dict keys checked to be strings, floats finite."""
    if isinstance(value, (list, tuple)):
        return [plain_value(item, where) for item in value]
    if isinstance(value, dict):
        bad = [key for key in value if not isinstance(key, str)]
        if bad:
            raise InputError(f"{where}: keys must be strings, got {bad[0]!r}")
        return {key: plain_value(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{where}: must be a finite number, got {value!r}")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise InputError(f"{where}: {type(value).__name__} values cannot be part of a run's configuration")


def canonical_json(value) -> str:
    """The one JSON text of ``value`` that hashing uses (sorted keys, compact, ASCII)."""
    return json.dumps(plain_value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def config_hash(config: dict) -> str:
    """Stable key of a normalised run configuration (see the module docstring)."""
    return hashlib.sha256(canonical_json(config).encode("ascii")).hexdigest()[:HASH_LENGTH]
