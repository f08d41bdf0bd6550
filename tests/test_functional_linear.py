"""F.linear (functional/linear.py): forward vs numpy, backward vs finite differences."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbnn.functional as F
from gradcheck import check_gradients
from numbnn.errors import InputError


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@settings(max_examples=10)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3), st.integers(1, 5), st.integers(1, 4), st.booleans())
def test_linear(lead, n_in, n_out, with_bias):
    x, w, b = _randn(*lead, n_in, seed=1), _randn(n_out, n_in, seed=2), _randn(n_out, seed=3)
    expected = x @ w.T + (b if with_bias else 0)
    np.testing.assert_allclose(F.linear(x, w, b if with_bias else None).data, expected, rtol=1e-12)
    if with_bias:
        check_gradients(lambda a, c, d: F.linear(a, c, d), x, w, b)
    else:
        check_gradients(lambda a, c: F.linear(a, c), x, w)
    with pytest.raises(InputError):
        F.linear(x, _randn(n_out, n_in + 1))
