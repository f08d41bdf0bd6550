"""The one integer-argument check every layer uses, so bad sizes are refused alike everywhere.

A bool (``True == 1``) and a float (even ``8.0``) are errors, never truncated; numpy integers are
accepted. The error is an :class:`~numbnn.errors.InputError` naming the argument, or the class a caller
names (a file loader reports a bad attribute as a bad file).
"""

import numbers

from numbnn.errors import InputError, NumbnnError


def check_int(value, name: str, minimum: int = 1, maximum: int | None = None,
              error: type[NumbnnError] = InputError) -> int:
    """``value`` as a Python int in [minimum, maximum] (no upper bound by default); else raise ``error``."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum
            or (maximum is not None and value > maximum)):
        if maximum is not None:
            wanted = f"an integer in [{minimum}, {maximum}]"
        else:
            wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise error(f"{name} must be {wanted}, got {value!r}")
    return int(value)
