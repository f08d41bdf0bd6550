"""Checks shared by the models' constructors (one place, so every model rejects bad sizes alike)."""

from numbnn.checks import check_int
from numbnn.errors import InputError


def positive_ints(values, name: str) -> list[int]:
    """``values`` as a list of ints >= 1; a float such as 8.5 or a bool is an error, never truncated.

    The error names the whole list (``widths=[16, 0, 32]``), which says more than the one bad item.
    """
    try:
        return [check_int(item, name) for item in values]
    except (TypeError, InputError):
        raise InputError(f"{name} must be a list of positive integers, got {values!r}") from None
