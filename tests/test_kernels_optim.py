"""numbnn/kernels/optim.py: the fused Adam / AdamW step against its naive twin in tests/naive.py."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from channel_cases import rows_channels, tolerance
from numbnn.kernels import optim as _optim_kernels


@settings(max_examples=25)
@given(rows_channels(), st.booleans())
def test_adam_step_matches_numpy(case, decoupled):
    x, (m, v, *_), g = case
    data, grad = x.reshape(-1).copy(), g.reshape(-1)
    exp_avg, exp_avg_sq = np.resize(m, data.size), np.abs(np.resize(v, data.size))
    shrink, l2 = (1 - 0.01 * 0.1, 0.0) if decoupled else (1.0, 0.1)
    beta1, beta2, step_size, bias2_root, eps = 0.9, 0.999, 0.01 / (1 - 0.9**3), np.sqrt(1 - 0.999**3), 1e-8
    expected, m2, v2 = naive.adam_step(data, grad, exp_avg, exp_avg_sq, shrink, l2, beta1, beta2, step_size, bias2_root, eps)
    _optim_kernels.adam_step(data, grad, exp_avg, exp_avg_sq, shrink, l2, beta1, beta2, step_size, bias2_root, eps)
    tol = tolerance(x.dtype)
    np.testing.assert_allclose(exp_avg, m2, **tol)
    np.testing.assert_allclose(exp_avg_sq, v2, **tol)
    np.testing.assert_allclose(data, expected, **tol)
