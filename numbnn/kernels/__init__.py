"""Numba kernels: bit packing, XNOR-popcount matmul and convolution, float im2col.

Numpy arrays in, numpy arrays out; no autograd. Every public function validates its arguments in
Python (raising :class:`numbnn.errors.InputError` naming the argument) and then calls an ``@njit``
implementation compiled on first use and cached on disk.
"""

from numbnn.kernels.geometry import conv_output_size
from numbnn.kernels.im2col import col2im, im2col

__all__ = ["col2im", "conv_output_size", "im2col"]
