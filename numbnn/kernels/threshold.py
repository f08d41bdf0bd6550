"""Sign of a per-channel affine map of int32 accumulators, written straight into packed bits.

A binary layer's output feeds the next binary layer only through its sign, so the inference path
never needs the float values: with the folded per-channel affine y[c] = scale[c] * acc + bias[c]
(batch norm, scaling factors, ...), the output bit is 1 iff y < 0, and for an integer acc that is
one integer comparison (LCE's bitpacked-output thresholds):

- scale > 0:  y < 0  <=>  acc < -bias/scale    <=>  acc < ceil(-bias/scale)         (flip = False)
- scale < 0:  y < 0  <=>  acc > -bias/scale    <=>  not (acc < floor(-bias/scale) + 1)  (flip = True)
- scale == 0: y = bias for every acc: always 1 if bias < 0 (threshold above every int32), else never
  (threshold below every int32).

So bit = (acc < threshold[c]) XOR flip[c], with int64 thresholds so that "always" and "never" fit.
At y == 0 exactly the bit is 0 (sign(0) = +1), matching :func:`numbnn.kernels.pack_bits`.
"""

import numba as nb
import numpy as np

from numbnn.errors import InputError
from numbnn.kernels._checks import require_array, words_for

_ALWAYS = np.int64(2**40)  # above every int32 accumulator
_NEVER = np.int64(-(2**40))  # below every int32 accumulator


def affine_thresholds(scale, bias) -> tuple[np.ndarray, np.ndarray]:
    """Integer thresholds and flip flags equivalent to sign(scale * acc + bias) per channel (see module doc).

    Exact for y evaluated in float64 as ``scale * acc + bias``: the threshold from ceil/floor is then
    nudged by +-1 until it is exactly where that float expression changes sign (rounding in -bias/scale
    can put it one off).
    """
    scale, bias = _float_vector(scale, "scale"), _float_vector(bias, "bias")
    if scale.shape != bias.shape:
        raise InputError(f"scale has shape {scale.shape} but bias has shape {bias.shape}")
    positive, negative = scale > 0, scale < 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        crossing = np.where(scale != 0, -bias / scale, 0.0)
    candidate = np.where(positive, np.ceil(crossing), np.floor(crossing) + 1)
    thresholds = np.clip(np.nan_to_num(candidate, posinf=_ALWAYS, neginf=_NEVER), _NEVER, _ALWAYS).astype(np.int64)
    # threshold = first integer acc whose output bit differs from that of acc - 1 (the bit of acc
    # below it is 1 for scale > 0, 0 for scale < 0): nudge until y(t-1) and y(t) straddle 0.
    interior = (scale != 0) & (thresholds > _NEVER) & (thresholds < _ALWAYS)
    for _ in range(4):
        below_negative = scale * (thresholds - 1) + bias < 0
        at_negative = scale * thresholds + bias < 0
        step = np.where(positive, np.where(~below_negative, -1, np.where(at_negative, 1, 0)),
                        np.where(below_negative, -1, np.where(~at_negative, 1, 0)))
        step = np.where(interior, step, 0)
        if not step.any():
            break
        thresholds += step
    thresholds[scale == 0] = np.where(bias[scale == 0] < 0, _ALWAYS, _NEVER)
    return thresholds, negative


def _float_vector(values, name: str) -> np.ndarray:
    try:
        vector = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a 1-D array of numbers") from None
    if vector.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise InputError(f"{name} must be finite")
    return vector


def threshold_pack(acc, thresholds, flip) -> np.ndarray:
    """Pack bit (acc[..., c] < thresholds[c]) XOR flip[c] along the last axis into uint64 words.

    ``acc`` int32 [..., C] (e.g. a :func:`binary_conv2d` output), ``thresholds`` int64 [C],
    ``flip`` bool [C]; the result is [..., ceil(C/64)] in the layout of :func:`pack_bits`.
    """
    acc = require_array(acc, "acc", (np.int32,), min_ndim=1)
    thresholds = require_array(thresholds, "thresholds", (np.int64,), ndim=1)
    flip = require_array(flip, "flip", (np.bool_,), ndim=1)
    channels = acc.shape[-1]
    if channels == 0:
        raise InputError(f"acc must have at least one channel, got shape {acc.shape}")
    for name, v in (("thresholds", thresholds), ("flip", flip)):
        if v.shape[0] != channels:
            raise InputError(f"{name} has {v.shape[0]} entries but acc has {channels} channels")
    packed = np.empty(acc.shape[:-1] + (words_for(channels),), dtype=np.uint64)
    _threshold_pack(acc.reshape(-1, channels), thresholds, flip, packed.reshape(-1, words_for(channels)))
    return packed


@nb.njit(parallel=True, cache=True)
def _threshold_pack(acc, thresholds, flip, packed):
    n_rows, channels = acc.shape
    n_words = packed.shape[1]
    for r in nb.prange(n_rows):
        for j in range(n_words):
            word = np.uint64(0)
            for i in range(min(64, channels - 64 * j)):
                c = 64 * j + i
                bit = (np.int64(acc[r, c]) < thresholds[c]) != flip[c]
                word |= np.uint64(bit) << np.uint64(i)
            packed[r, j] = word
