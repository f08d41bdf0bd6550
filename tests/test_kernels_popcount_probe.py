"""The popcount probe computes what its naive twin does, and measures a positive, finite rate."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from numbnn.kernels.popcount_probe import bits_per_step, start_values, xor_popcount_chains, xor_popcount_rate


@settings(max_examples=30, deadline=None)
@given(iterations=st.integers(0, 200), seed=st.integers(0, 2**20))
def test_chains_match_naive(iterations, seed):
    assert xor_popcount_chains(iterations, seed) == naive.xor_popcount_chains(iterations, start_values(seed))


def test_rate_counts_every_bit_of_every_step():
    result = xor_popcount_rate(seconds=0.02)
    expected = result["threads"] * result["iterations"] * bits_per_step() / result["seconds"]
    assert np.isclose(result["binary_macs_per_s"], expected)
    assert 1e8 < result["binary_macs_per_s"] < 1e14  # between a slow emulator and 100x today's cores
