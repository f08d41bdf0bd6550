"""Sign bit-packing along one axis into uint64 words, and its inverse.

Convention (shared by every binary kernel): bit ``i`` of word ``j`` is 1 iff ``x[..., 64*j + i] < 0``.
So a set bit means -1 and a clear bit +1 (sign(0) = +1); the tail bits of the last word are 0. The
packed axis has length ceil(n/64).

Internally the packed axis is moved last and the array is viewed as [rows, n]; every (row, word)
pair is one independent task, so the kernel is parallel both for many short rows (NHWC activations
packed over channels) and for a few long ones. A full word is one vector compare of 64 elements
turned into a 64-bit mask (see :mod:`numbnn.kernels.intrinsics`).
"""

import numba as nb
import numpy as np

from numbnn.errors import InputError
from numbnn.kernels._checks import as_int, require_array, words_for
from numbnn.kernels.intrinsics import shifted_sign_bits64, sign_bits64, store_signs64

_PACKABLE = (np.float32, np.float64, np.int8)
_PARALLEL_MIN_ELEMENTS = 1 << 16  # below this, thread start-up costs more than the work


def pack_bits(x, axis=-1) -> np.ndarray:
    """Pack the signs of float32/float64/int8 ``x`` along ``axis`` into uint64 words (bit 1 = negative)."""
    x = require_array(x, "x", _PACKABLE, min_ndim=1)
    axis = _normalise_axis(axis, x.ndim)
    last = axis == x.ndim - 1  # the usual case: no axis to move (moveaxis costs microseconds at batch 1)
    moved = x if last else np.ascontiguousarray(np.moveaxis(x, axis, -1))
    n = moved.shape[-1]
    packed = np.empty(moved.shape[:-1] + (words_for(n),), dtype=np.uint64)
    kernel = _pack_parallel if moved.size >= _PARALLEL_MIN_ELEMENTS else _pack_serial
    kernel(moved.reshape(-1), n, packed.reshape(-1))
    return packed if last else np.ascontiguousarray(np.moveaxis(packed, -1, axis))


def unpack_bits(p, n, axis=-1) -> np.ndarray:
    """Inverse of :func:`pack_bits`: float32 +1/-1 values, ``n`` of them along ``axis``."""
    p = require_array(p, "p", (np.uint64,), min_ndim=1)
    n = as_int(n, "n", 0)
    axis = _normalise_axis(axis, p.ndim)
    if p.shape[axis] != words_for(n):
        raise InputError(f"p has {p.shape[axis]} words along axis {axis}, but n={n} needs {words_for(n)}")
    moved = np.ascontiguousarray(np.moveaxis(p, axis, -1))
    values = np.empty(moved.shape[:-1] + (n,), dtype=np.float32)
    kernel = _unpack_parallel if values.size >= _PARALLEL_MIN_ELEMENTS else _unpack_serial
    kernel(moved.reshape(-1), n, values.reshape(-1))
    return np.ascontiguousarray(np.moveaxis(values, -1, axis))


def pack_activations(x, groups=1, shift=None) -> np.ndarray:
    """Pack NHWC ``x`` [N, H, W, C] per channel group: [N, H, W, groups*ceil((C/groups)/64)].

    Each group's C/groups channels start a fresh word, which is the layout :func:`binary_conv2d`
    expects for grouped convolution (groups=1 is plain ``pack_bits(x, axis=-1)``). ``shift``: None, or
    one value per channel (x's float dtype) packed as the signs of x + shift (RSign's threshold, ReActNet
    arXiv 2003.03488 eq. 1), each sum rounded to x's dtype as numpy's x + shift is, never written.
    """
    x = require_array(x, "x", _PACKABLE, ndim=4)
    groups = as_int(groups, "groups", 1)
    n, h, w, c = x.shape
    if c % groups:
        raise InputError(f"x has {c} channels, not divisible by groups={groups}")
    if shift is None:
        packed = pack_bits(x.reshape(n, h, w, groups, c // groups), axis=-1)
        return packed.reshape(n, h, w, groups * words_for(c // groups))  # explicit: -1 is ambiguous for N = 0
    if x.dtype == np.int8:
        raise InputError("shift needs float x (float32 or float64), got int8")
    shift = require_array(shift, "shift", (x.dtype.type,), ndim=1)
    if shift.shape != (c,):
        raise InputError(f"shift must have shape ({c},) (one per channel), got {shift.shape}")
    words = words_for(c // groups)
    packed = np.empty((n, h, w, groups * words), dtype=np.uint64)
    padded = np.zeros(c + 64, x.dtype)  # a word's 64 shifts can be read past the last channel
    padded[:c] = shift
    _pack_shifted(x.reshape(-1, c), padded, groups, packed.reshape(-1, groups * words))
    return packed


def pack_conv_weight(w) -> np.ndarray:
    """Pack an OHWI weight [O, KH, KW, C_in/groups] along I: [O, KH, KW, ceil((C_in/groups)/64)].

    A grouped weight already holds only its group's input channels, so grouping needs nothing extra.
    """
    w = require_array(w, "w", _PACKABLE, ndim=4)
    return pack_bits(w, axis=-1)


def _normalise_axis(axis, ndim: int) -> int:
    axis = as_int(axis, "axis", -ndim)
    if axis >= ndim:
        raise InputError(f"axis {axis} is out of range for an array of rank {ndim}")
    return axis % ndim


@nb.njit(inline="always")
def _pack_word(x, n, packed, task):
    """Word ``task`` of the flat output: bits of row task // n_words, elements 64*j .. 64*j+63."""
    n_words = (n + 63) // 64
    row = task // n_words
    start = 64 * (task % n_words)
    offset = row * n + start
    if start + 64 <= n:
        packed[task] = sign_bits64(x, offset)
    elif offset + 64 <= x.size:
        # Tail word, but 64 elements are still readable: vector compare, then clear the bits that
        # belong to the next row (tail bits must be 0).
        packed[task] = sign_bits64(x, offset) & ((np.uint64(1) << np.uint64(n - start)) - np.uint64(1))
    else:
        word = np.uint64(0)
        for i in range(n - start):
            word |= np.uint64(x[offset + i] < 0) << np.uint64(i)
        packed[task] = word


@nb.njit(inline="always")
def _unpack_word(packed, n, values, task):
    n_words = (n + 63) // 64
    row = task // n_words
    start = 64 * (task % n_words)
    offset = row * n + start
    word = packed[task]
    if start + 64 <= n:
        store_signs64(word, values, offset)
    else:  # tail: only this row's elements, so parallel tasks never write the same place
        for i in range(n - start):
            values[offset + i] = np.float32(1.0) - np.float32(2.0) * np.float32((word >> np.uint64(i)) & np.uint64(1))


@nb.njit(parallel=True, cache=True)
def _pack_shifted(x, shift, groups, packed):
    """packed[r, g*words + j] = the signs of x[r, g*cg + 64j : ...] + shift[g*cg + 64j : ...] (tail bits 0);
    one task per row of x [R, C], ``shift`` padded with 64 values past C. A group's partial last word is one
    vector compare whose bits past the group are cleared, or, at the very end of x, built value by value."""
    rows, c = x.shape
    cg = c // groups
    words = (cg + 63) // 64
    flat = x.reshape(-1)
    for r in nb.prange(rows):
        for grp in range(groups):
            for j in range(words):
                start = grp * cg + 64 * j  # channel of bit 0
                count = min(64, cg - 64 * j)
                if r * c + start + 64 <= flat.size:  # 64 readable values: one vector compare
                    word = shifted_sign_bits64(flat, r * c + start, shift, start)
                    if count < 64:  # the bits past the group are cleared
                        word &= (np.uint64(1) << np.uint64(count)) - np.uint64(1)
                else:
                    word = np.uint64(0)
                    for i in range(count):
                        word |= np.uint64(x[r, start + i] + shift[start + i] < 0) << np.uint64(i)
                packed[r, grp * words + j] = word


# Serial and parallel drivers over the same per-word body; the wrappers pick one by size.
@nb.njit(cache=True)
def _pack_serial(x, n, packed):
    for task in range(packed.size):
        _pack_word(x, n, packed, task)


@nb.njit(parallel=True, cache=True)
def _pack_parallel(x, n, packed):
    for task in nb.prange(packed.size):
        _pack_word(x, n, packed, task)


@nb.njit(cache=True)
def _unpack_serial(packed, n, values):
    for task in range(packed.size):
        _unpack_word(packed, n, values, task)


@nb.njit(parallel=True, cache=True)
def _unpack_parallel(packed, n, values):
    for task in nb.prange(packed.size):
        _unpack_word(packed, n, values, task)
