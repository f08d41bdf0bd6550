"""Checks shared by the models' constructors (one place, so every model rejects bad sizes alike)."""

import numbers

from numbnn.errors import InputError


def positive_ints(values, name: str) -> list[int]:
    """``values`` as a list of ints >= 1; a float such as 8.5 or a bool is an error, never truncated."""
    try:
        items = list(values)
    except TypeError:
        raise InputError(f"{name} must be a list of positive integers, got {values!r}") from None
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral) or item < 1:
            raise InputError(f"{name} must be a list of positive integers, got {values!r}")
    return [int(item) for item in items]
