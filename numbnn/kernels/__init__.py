"""Numba kernels, the only jitted loops of numbnn: bit packing, XNOR-popcount matmul and convolution
(one convolution driver for training and the packed runtime), float im2col, depthwise conv, pooling, sign-matrix
products (the binary convs' weight and input gradients by table lookup), the register-tiled input gradient of
narrow convs, per-channel steps, tree evaluation; and ``gemm``, float products split over numbnn's threads.

Numpy arrays in, numpy arrays out; no autograd. Every public function validates its arguments in
Python (raising :class:`numbnn.errors.InputError` naming the argument) and then calls an ``@njit``
implementation compiled on first use and cached on disk. The packed runtime's entry points
(binary_conv_driver, steps, threshold_packing, trees) are called with arrays its ops have checked;
they carry explicit signatures instead, so a wrong dtype or layout is a TypeError, never a new
specialisation running without bounds checks.

Caching: Numba re-validates a cached function only against its own source file, so a caller in another
file would keep running its cached copy of an edited callee. Importing this package therefore compares one
hash of every kernel source with the one recorded beside the cache and, when they differ, drops the cached
kernels once (:mod:`numbnn.kernels.cache_freshness`): after an edit or an upgrade in place everything
compiles afresh.

Threads: Numba's OpenMP layer (GNU libgomp) wakes its worker for every parallel region. Left to
its default, libgomp lets idle workers spin only ~100 times before sleeping, so every region pays a
futex wake-up (about 65 us per region on the 2-core Intel Xeon here: a 17-op packed reactnet-a took
1.35 ms at batch 1 with 2 threads against 0.22 ms with 1). numbnn therefore sets GOMP_SPINCOUNT=10000
unless the user set it or OMP_WAIT_POLICY: a worker spins a fraction of a millisecond, long enough to
reach the next kernel of a training step. Measured there (`numbnn bench train --model reactnet-a
--batch-size 64 --steps 20 --threads 2`, epoch seconds, two runs each): spin 100 86.2/86.5, 3,000
71.1/70.8, 10,000 64.1/64.7, 30,000 68.9/67.6, 300,000 74.4/74.1 (longer spins take the core from
numbnn's own product threads, :mod:`numbnn.kernels.gemm`). The cost: when another busy process
shares the cores, spinning takes time from it and from numbnn (one busy loop beside that benchmark:
106 s with OMP_WAIT_POLICY=PASSIVE, 173 s with the spin); on a shared machine set
OMP_WAIT_POLICY=PASSIVE or train with ``--threads 1``. Read once when libgomp loads, so it has no
effect if another library loaded libgomp first.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from numbnn.kernels._checks import words_for  # noqa: E402
from numbnn.kernels.binary_conv import binary_conv2d  # noqa: E402
from numbnn.kernels.binary_gemm import binary_matmul  # noqa: E402
from numbnn.kernels.geometry import conv_output_size  # noqa: E402
from numbnn.kernels.im2col import col2im, im2col  # noqa: E402
from numbnn.kernels.packing import pack_activations, pack_bits, pack_conv_weight, unpack_bits  # noqa: E402
from numbnn.kernels.permute_conv_input_grad import permute_conv_input_grad  # noqa: E402
from numbnn.kernels.sign_matmul import pack_sign_columns, padding_tap_sums, sign_rows_matmul  # noqa: E402
from numbnn.kernels.sign_conv_input_grad import sign_conv_input_grad  # noqa: E402
from numbnn.kernels.cache_freshness import keep_kernel_caches_fresh  # noqa: E402
from numbnn.kernels.packing import _pack_parallel  # noqa: E402  (any cached kernel: where Numba puts the cache)

keep_kernel_caches_fresh(_pack_parallel)  # before any kernel is loaded

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
    "permute_conv_input_grad",
    "sign_rows_matmul",
    "sign_conv_input_grad",
    "unpack_bits",
    "words_for",
]
