"""Argument checks shared by the kernel wrappers.

Every public kernel is a thin Python function that runs these checks and then calls an ``@njit``
implementation, so bad input ends as one :class:`numbnn.errors.InputError` naming the argument and
never as a Numba typing traceback.
"""

import numbers

import numpy as np

from numbnn.errors import InputError


def as_pair(value, name: str, minimum: int) -> tuple[int, int]:
    """``value`` as an (h, w) pair of Python ints, each >= ``minimum``."""
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int \
            and value[0] >= minimum and value[1] >= minimum:  # the common case first: layers call this per batch
        return value
    if _is_int(value):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        pair = (int(value[0]), int(value[1]))
    else:
        raise InputError(f"{name} must be an int or an (h, w) pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def as_int(value, name: str, minimum: int) -> int:
    """``value`` as a Python int >= ``minimum``."""
    if type(value) is int and value >= minimum:  # the common case first (see as_pair)
        return value
    if not _is_int(value):
        raise InputError(f"{name} must be an int, got {value!r}")
    if int(value) < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def as_pad_value(value) -> int:
    """A binary convolution's padding value: 0, +1 or -1 (a bool is an error, not 1)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and value in (0, 1, -1):
        return int(value)
    raise InputError(f"pad_value must be 0, 1 or -1, got {value!r}")


def require_array(x, name: str, dtypes: tuple, ndim: int | None = None, min_ndim: int = 0) -> np.ndarray:
    """Check ``x`` is an ndarray of one of ``dtypes`` with the given rank; return it C-contiguous."""
    if not isinstance(x, np.ndarray):
        raise InputError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.dtype not in [np.dtype(d) for d in dtypes]:
        allowed = "/".join(np.dtype(d).name for d in dtypes)
        raise InputError(f"{name} must have dtype {allowed}, got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise InputError(f"{name} must have rank {ndim}, got shape {x.shape}")
    if x.ndim < min_ndim:
        raise InputError(f"{name} must have rank >= {min_ndim}, got shape {x.shape}")
    return np.ascontiguousarray(x)


def words_for(n_bits: int) -> int:
    """Number of 64-bit words that hold ``n_bits`` bits: ceil(n_bits / 64)."""
    return (n_bits + 63) // 64


def _is_int(value) -> bool:
    # plain ints first: the abstract-class check costs microseconds, and layers check ints on every call
    return type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool))


def as_groups(groups, channels: int, name: str) -> int:
    """``groups`` checked: an int >= 1 that divides the ``channels`` of ``name``."""
    groups = as_int(groups, "groups", 1)
    if channels % groups:
        raise InputError(f"{name} has {channels} channels, not divisible by groups={groups}")
    return groups


def as_shape4(input_shape) -> tuple[int, int, int, int]:
    """``input_shape`` as an (N, H, W, C) tuple of Python ints >= 1."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise InputError(f"input_shape must be a tuple of 4 ints, got {input_shape!r}") from None
    if len(shape) != 4:
        raise InputError(f"input_shape must be 4 positive ints (N, H, W, C), got {input_shape!r}")
    return tuple(as_int(v, f"input_shape {axis}", 1) for axis, v in zip("NHWC", shape))


def out_array(out, shape: tuple, dtype) -> np.ndarray:
    """``out`` checked to be a C-contiguous array of ``shape`` and ``dtype`` (a kernel's result buffer), or a
    new uninitialised one if it is None."""
    dtype = np.dtype(dtype)
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not (isinstance(out, np.ndarray) and out.shape == tuple(shape) and out.dtype == dtype and out.flags.c_contiguous):
        got = f"{out.shape} {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
        raise InputError(f"out must be a C-contiguous {dtype} array of shape {tuple(shape)}, got {got}")
    return out
