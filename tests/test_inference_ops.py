"""Ops of the packed runtime against plain-numpy twins (at the top) and against the float model's functions.

Integer and packing ops must match exactly; float steps must equal the same float32 arithmetic done
with numpy ufuncs, bit for bit (the packed model repeats the float model's arithmetic).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
import numbnn.functional as F
from numbnn.autograd import Tensor
from numbnn.inference.ops import (
    STAGES, AvgPool, Elementwise, GraphError, Pack, PackAccumulator, Reduce, Slice, Spec, build_op,
)

# ---- naive twins -------------------------------------------------------------------------------------


def naive_pack_grouped(bits: np.ndarray, groups: int) -> np.ndarray:
    """bits [..., C] booleans -> each group's C/groups bits packed on their own (bit 1 = True)."""
    parts = np.split(np.where(bits, -1.0, 1.0), groups, axis=-1)
    return np.concatenate([naive.pack_bits(part) for part in parts], axis=-1)


def naive_steps(stages, params, x, other=None):
    """The elementwise node's steps with numpy float32 ufuncs, one after the other."""
    y = x.astype(np.float32)
    channels = y.shape[-1]
    if other is not None:
        other = np.tile(other, (1,) * (other.ndim - 1) + (channels // other.shape[-1],))
    row = 0
    for stage in stages:
        p = params[row:row + STAGES[stage][1]]
        row += STAGES[stage][1]
        if stage == "mul":
            y = y * p[0]
        elif stage == "add":
            y = y + p[0]
        elif stage == "sub":
            y = y - p[0]
        elif stage == "rsub":
            y = p[0] - y
        elif stage == "div":
            y = y / p[0]
        elif stage == "rdiv":
            y = p[0] / y
        elif stage == "affine":
            y = y * p[0] + p[1]
        elif stage == "dprelu":
            u = y - p[0]
            y = np.where(u >= 0, p[1], p[2]) * u - p[3]
        elif stage == "relu":
            y = y * (y > 0)
        elif stage == "hard_sigmoid":
            y = np.clip(y + 3, 0, 6) / 6
        elif stage == "fake_quant":
            y = np.rint(np.clip(y, p[0], p[1]) / p[2]) * p[2]
        elif stage == "sign":
            y = np.where(y < 0, np.float32(-1), np.float32(1))
        elif stage == "neg":
            y = -y
        elif stage == "add_input":
            y = y + other
        elif stage == "sub_input":
            y = y - other
        elif stage == "rsub_input":
            y = other - y
        elif stage == "mul_input":
            y = y * other
    return y


# ---- packing -------------------------------------------------------------------------------------------


@settings(max_examples=40)
@given(st.integers(1, 3), st.sampled_from([1, 2, 3]), st.integers(1, 90), st.integers(0, 2**32 - 1))
def test_pack_with_thresholds_matches_naive(batch, groups, per_group, seed):
    rng = np.random.default_rng(seed)
    channels = groups * per_group
    x = rng.standard_normal((batch, 3, 2, channels)).astype(np.float32)
    threshold = (rng.standard_normal(channels) * 0.5).astype(np.float32)
    x[0, 0, 0] = threshold  # x == t exactly: not below, bit 0
    x[..., :1] = np.float32(-0.0)
    got = Pack({"groups": groups}, {"threshold": threshold})(x)
    np.testing.assert_array_equal(got, naive_pack_grouped(x < threshold, groups))
    # x + b < 0 <=> x < -b: folding a bias into the threshold does not change a bit
    np.testing.assert_array_equal(Pack({"groups": groups}, {"threshold": -threshold})(x),
                                  naive_pack_grouped((x + threshold) < 0, groups))


@settings(max_examples=40)
@given(st.integers(1, 3), st.sampled_from([1, 2, 4]), st.integers(1, 80), st.integers(0, 2**32 - 1))
def test_pack_acc_matches_naive(batch, groups, per_group, seed):
    rng = np.random.default_rng(seed)
    channels = groups * per_group
    acc = rng.integers(-40, 40, (batch, 2, 3, channels)).astype(np.int32)
    threshold = rng.integers(-45, 45, channels).astype(np.int32)
    flip = rng.random(channels) < 0.5
    got = PackAccumulator({"groups": groups}, {"threshold": threshold, "flip": flip})(acc)
    np.testing.assert_array_equal(got, naive_pack_grouped((acc < threshold) != flip, groups))


# ---- per-channel steps ----------------------------------------------------------------------------------


@settings(max_examples=60)
@given(st.lists(st.sampled_from(sorted(STAGES)), min_size=1, max_size=5), st.integers(1, 70),
       st.sampled_from(["same", "per_image", "repeated"]), st.booleans(), st.integers(0, 2**32 - 1))
def test_steps_match_numpy_bit_for_bit(stages, channels, other_kind, int_input, seed):
    rng = np.random.default_rng(seed)
    inputs = [s for s in stages if STAGES[s][2]]
    if len(set(inputs)) > 1:
        stages = [s for s in stages if not STAGES[s][2]] + inputs[:1]
    rows = sum(STAGES[s][1] for s in stages)
    params = rng.standard_normal((rows, channels)).astype(np.float32)
    shape = (2, 3, 5, channels)
    x = rng.integers(-30, 30, shape).astype(np.int32) if int_input else rng.standard_normal(shape).astype(np.float32)
    other = None
    if any(STAGES[s][2] for s in stages):
        if other_kind == "per_image":
            other = rng.standard_normal((2, 1, 1, channels)).astype(np.float32)
        elif other_kind == "repeated" and channels % 2 == 0:
            other = rng.standard_normal((2, 3, 5, channels // 2)).astype(np.float32)
        else:
            other = rng.standard_normal(shape).astype(np.float32)
    op = Elementwise({"stages": stages}, {"params": params})
    got = op(x) if other is None else op(x, other)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(got, naive_steps(stages, params, x, other))


def test_steps_reject_a_bad_description():
    with pytest.raises(GraphError, match="stages"):
        Elementwise({"stages": ["exp"]}, {"params": np.zeros((0, 3), np.float32)})
    with pytest.raises(GraphError, match="parameter rows"):
        Elementwise({"stages": ["affine"]}, {"params": np.zeros((1, 3), np.float32)})
    with pytest.raises(GraphError, match="float32"):
        Elementwise({"stages": []}, {"params": np.zeros((0, 3), np.float64)})


# ---- ops that must equal the float model's functions ---------------------------------------------------------


@settings(max_examples=30)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 3), st.integers(1, 3), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_avg_pool_equals_the_float_model(h, w, kernel, stride, same, seed):
    if not same and (h < kernel or w < kernel):
        return
    x = np.random.default_rng(seed).standard_normal((2, h, w, 5)).astype(np.float32)
    padding = "same" if same else [0, 0]
    expected = F.avg_pool2d(Tensor(x), kernel, stride, "same" if same else 0).data
    got = AvgPool({"kernel_size": [kernel, kernel], "stride": [stride, stride], "padding": padding}, {})(x)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("shape", [(3, 4, 4, 256), (1, 7, 7, 130), (5, 1, 1, 3)])
def test_global_mean_equals_the_float_model(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    got = Reduce({"fn": "mean", "axis": [1, 2], "keepdims": False}, {})(x)
    np.testing.assert_array_equal(got, F.global_avg_pool(Tensor(x)).data)


def test_slice_keeps_the_batch_and_rejects_batch_slicing():
    x = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)
    op = Slice({"index": [[None, None, None], [1, None, None], [None, -1, 2]]}, {})
    np.testing.assert_array_equal(op(x), x[:, 1:, :-1:2])
    assert op.output_spec([Spec("float32", (4, 5, 3))]) == Spec("float32", (3, 2, 3))
    with pytest.raises(GraphError, match="batch"):
        Slice({"index": [[0, 1, None]]}, {})


def test_unknown_op_is_a_graph_error():
    with pytest.raises(GraphError, match="unknown op 'exec'"):
        build_op("exec", {}, {})


# ---- binary convolution ----------------------------------------------------------------------------------


@settings(max_examples=40)
@given(st.integers(1, 2), st.integers(3, 8), st.sampled_from([1, 2]), st.integers(1, 70), st.integers(1, 5),
       st.sampled_from([(1, 0), (3, 1), (3, 0), (2, 0)]), st.sampled_from([1, 2]), st.sampled_from([0, 1, -1]),
       st.integers(0, 2**32 - 1))
def test_binary_conv_matches_naive(batch, size, groups, per_group, outputs, kernel_padding, stride, pad_value, seed):
    rng = np.random.default_rng(seed)
    kernel, padding = kernel_padding
    channels, out_channels = groups * per_group, groups * outputs
    x = rng.standard_normal((batch, size, size, channels)).astype(np.float32)
    w = rng.standard_normal((out_channels, kernel, kernel, per_group)).astype(np.float32)
    op = build_op("bconv", {"in_channels": channels, "groups": groups, "stride": [stride, stride],
                            "padding": [padding, padding], "dilation": [1, 1], "pad_value": pad_value},
                  {"weight": naive.pack_bits(w)})
    packed = Pack({"groups": groups}, {})(x)
    expected = naive.binary_conv2d(naive.pack_bits(x.reshape(batch, size, size, groups, per_group)).reshape(batch, size, size, -1),
                                   naive.pack_bits(w), channels, stride, padding, 1, pad_value, groups)
    got = op(packed)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)
