"""Scratch buffers of the vector-IR kernels start on 64-byte boundaries (one cache line per vector)."""

import numpy as np
import pytest

from numbnn.kernels.intrinsics import aligned_zeros


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 1000])
def test_aligned_zeros_are_zeros_on_a_vector_boundary(n):
    for _ in range(4):  # several allocations: Numba's own land 32 bytes off a boundary about half the time
        a = aligned_zeros(n)
        assert a.shape == (n,) and a.dtype == np.float32 and not a.any()
        assert n == 0 or a.ctypes.data % 64 == 0  # one 16-float vector per cache line
