"""numbnn/kernels/norm.py: batch norm's per-channel moments, backward sums and affine maps, each against its
naive twin in tests/naive.py."""

import numpy as np
from hypothesis import given, settings

import naive
from channel_cases import rows_channels, tolerance
from numbnn.kernels import norm as _norm_kernels
from numbnn.kernels.channels import n_chunks


@settings(max_examples=25)
@given(rows_channels())
def test_batch_norm_kernels(case):
    x, (a, b, c, _), g = case
    chunks = n_chunks(x.shape[0])
    center = x[-1].astype(np.float64)
    moments = _norm_kernels.chunk_moments(x, center, chunks).sum(axis=1)
    np.testing.assert_allclose(moments, naive.chunk_moments(x, center), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(_norm_kernels.affine(x, a, b), naive.affine(x, a, b), **tolerance(x.dtype))
    np.testing.assert_allclose(_norm_kernels.affine2(g, x, a, b, c), naive.affine2(g, x, a, b, c), **tolerance(x.dtype))
    mean = x.mean(axis=0, dtype=np.float64)
    sums = _norm_kernels.grad_sums(g, x, mean, chunks).sum(axis=1)
    np.testing.assert_allclose(sums, naive.grad_sums(g, x, mean), rtol=1e-10, atol=1e-9)
