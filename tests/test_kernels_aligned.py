"""Scratch and output buffers of the vector-IR kernels start on 64-byte boundaries (one cache line per vector)."""

import numpy as np
import pytest

from numbnn.kernels.intrinsics import VECTOR_BYTES, aligned_empty, aligned_zeros


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 1000])
def test_aligned_zeros_are_zeros_on_a_vector_boundary(n):
    for _ in range(4):  # several allocations: Numba's own land 32 bytes off a boundary about half the time
        a = aligned_zeros(n)
        assert a.shape == (n,) and a.dtype == np.float32 and not a.any()
        assert n == 0 or a.ctypes.data % VECTOR_BYTES == 0


@pytest.mark.parametrize("shape,dtype", [((2, 3, 5, 16), np.float32), ((7,), np.float64), ((3, 0), np.float32)])
def test_aligned_empty_is_a_contiguous_array_on_a_vector_boundary(shape, dtype):
    a = aligned_empty(shape, dtype)
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    assert a.size == 0 or a.ctypes.data % VECTOR_BYTES == 0  # an empty array's data pointer is numpy's own
    a[...] = 1  # writable through its whole extent
    assert a.sum() == a.size
