"""ordered_matmul: equal to its naive twin bit for bit, and a row's result independent of the batch."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from numbnn.errors import InputError
from numbnn.kernels.ordered_matmul import ordered_matmul


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 40), depth=st.integers(1, 300), width=st.integers(1, 37),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**31 - 1))
def test_matches_naive_bit_for_bit(rows, depth, width, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, depth)).astype(dtype)
    wt = rng.standard_normal((depth, width)).astype(dtype)
    out = ordered_matmul(x, wt)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, naive.ordered_matmul(x, wt))


def test_rows_do_not_depend_on_the_batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((257, 1024)).astype(np.float32)
    wt = rng.standard_normal((1024, 10)).astype(np.float32)
    whole = ordered_matmul(x, wt)
    for lo, hi in [(0, 1), (3, 10), (100, 257)]:
        np.testing.assert_array_equal(ordered_matmul(x[lo:hi], wt), whole[lo:hi])


@pytest.mark.parametrize("x, wt", [
    (np.zeros((2, 3), np.float32), np.zeros((4, 5), np.float32)),
    (np.zeros((2, 3), np.float32), np.zeros((3, 5), np.float64)),
    (np.zeros((2, 3), np.int32), np.zeros((3, 5), np.int32)),
    (np.zeros(3, np.float32), np.zeros((3, 5), np.float32)),
])
def test_bad_operands_are_refused(x, wt):
    with pytest.raises(InputError, match="ordered_matmul"):
        ordered_matmul(x, wt)
