"""Numba kernels, the only jitted loops of numbnn: bit packing, XNOR-popcount matmul and convolution
(and the packed runtime's convolution driver), float im2col, depthwise conv, pooling, sign-matrix
products, per-channel steps, tree evaluation.

Numpy arrays in, numpy arrays out; no autograd. Every public function validates its arguments in
Python (raising :class:`numbnn.errors.InputError` naming the argument) and then calls an ``@njit``
implementation compiled on first use and cached on disk. The packed runtime's entry points
(binary_conv_driver, steps, threshold_packing, trees) are called with arrays its ops have checked;
they carry explicit signatures instead, so a wrong dtype or layout is a TypeError, never a new
specialisation running without bounds checks.

Caching: Numba re-validates a cached function only against its own source file. After editing a
kernel module, delete ``numbnn/kernels/__pycache__/*.nb[ic]`` (or set NUMBA_CACHE_DIR to a fresh
directory), or callers in other files keep running their cached copies of the old code.

Threads: with Numba's OpenMP layer, GNU OpenMP's default "spin, then sleep" wait makes every
parallel region cost milliseconds as soon as another busy thread (OpenBLAS, another process) shares
a core. numbnn therefore asks for passive waiting unless the user chose a policy; this only takes
effect if libgomp was not already loaded by another library.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from numbnn.kernels._checks import words_for  # noqa: E402
from numbnn.kernels.binary_conv import binary_conv2d  # noqa: E402
from numbnn.kernels.binary_gemm import binary_matmul  # noqa: E402
from numbnn.kernels.geometry import conv_output_size  # noqa: E402
from numbnn.kernels.im2col import col2im, im2col  # noqa: E402
from numbnn.kernels.packing import pack_activations, pack_bits, pack_conv_weight, unpack_bits  # noqa: E402
from numbnn.kernels.sign_matmul import pack_sign_columns, padding_tap_sums, sign_rows_matmul  # noqa: E402

__all__ = [
    "binary_conv2d",
    "binary_matmul",
    "col2im",
    "conv_output_size",
    "im2col",
    "pack_activations",
    "pack_bits",
    "pack_conv_weight",
    "pack_sign_columns",
    "padding_tap_sums",
    "sign_rows_matmul",
    "unpack_bits",
    "words_for",
]
