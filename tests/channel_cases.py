"""Hypothesis cases shared by the tests of the per-channel kernels (activations, channels, norm, optim):
a [rows, channels] array around the chunk and block sizes, four per-channel vectors and an upstream
gradient of the same shape."""

import numpy as np
from hypothesis import strategies as st

DTYPES = st.sampled_from([np.float32, np.float64])


@st.composite
def rows_channels(draw):
    rows = draw(st.sampled_from([1, 2, 5, 63, 64, 65, 300]))
    channels = draw(st.sampled_from([1, 3, 16, 33]))
    dtype = draw(DTYPES)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = (2 * rng.standard_normal((rows, channels))).astype(dtype)
    x.flat[:: max(1, x.size // 4)] = 0.0  # exact zeros exercise the u >= 0 / x >= 0 boundaries
    vectors = [rng.standard_normal(channels).astype(dtype) for _ in range(4)]
    return x, vectors, rng.standard_normal((rows, channels)).astype(dtype)


def tolerance(dtype) -> dict:
    """assert_allclose tolerances for a float sum computed in another order."""
    return dict(rtol=1e-5, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-10)
