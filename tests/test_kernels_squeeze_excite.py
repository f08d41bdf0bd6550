"""numbnn.kernels.squeeze_excite against its naive twin (the spatial mean, the step programs and the
fixed-order products of tests/naive.py in turn), and the fused inference node against the nodes it replaces."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from numbnn.kernels import steps
from numbnn.kernels.squeeze_excite import squeeze_excite_gate

# the steps a gate's programs use, and a few more that need no second input
GATE_STEPS = [steps.MUL, steps.ADD, steps.AFFINE, steps.DPRELU, steps.RELU, steps.HARD_SIGMOID, steps.FAKE_QUANT, steps.NEG]


def _program(rng, codes, channels):
    codes = np.array(codes, np.int64)
    rows = [naive.STEP_ROWS.get(naive.STEP_CODES[c], 0) for c in codes]
    params = rng.standard_normal((sum(rows), channels)).astype(np.float32)
    for at, code in zip(np.cumsum([0] + rows[:-1]), codes):
        if code == steps.FAKE_QUANT:  # lo < hi, a positive step
            params[at], params[at + 1], params[at + 2] = -1.0, 1.0, 2.0 / 255
    return codes, np.cumsum([0] + rows[:-1]).astype(np.int64), params


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6), st.integers(1, 40), st.integers(1, 9), st.integers(1, 40),
       st.lists(st.lists(st.sampled_from(GATE_STEPS), max_size=3), min_size=3, max_size=3), st.booleans(), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_gate_matches_naive_bit_for_bit(n, h, w, c, hidden, gates, codes, bias_1, bias_2, seed):
    """Batches of 1-5 images, odd map and channel sizes, empty programs, with and without biases."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    programs = [_program(rng, codes[0], c), _program(rng, codes[1], hidden), _program(rng, codes[2], gates)]
    wt_1, wt_2 = rng.standard_normal((c, hidden)).astype(np.float32), rng.standard_normal((hidden, gates)).astype(np.float32)
    b_1, b_2 = (rng.standard_normal(k).astype(np.float32) for k in (hidden, gates))
    out = np.full((n, gates), np.nan, np.float32)
    squeeze_excite_gate(x, *programs[0], wt_1, b_1 if bias_1 else np.zeros(0, np.float32), bias_1, *programs[1], wt_2,
                        b_2 if bias_2 else np.zeros(0, np.float32), bias_2, *programs[2], out)
    expected = naive.squeeze_excite_gate(x, programs[0], wt_1, b_1 if bias_1 else None, programs[1], wt_2,
                                         b_2 if bias_2 else None, programs[2])
    np.testing.assert_array_equal(out.view(np.int32), expected.view(np.int32))
