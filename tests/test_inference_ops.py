"""Ops of the packed runtime against plain-numpy twins (at the top) and against the float model's functions.

Integer and packing ops must match exactly; float steps must equal the same float32 arithmetic done
with numpy ufuncs, bit for bit (the packed model repeats the float model's arithmetic).
"""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
import numbnn.functional as F
from numbnn.autograd import Tensor
from numbnn.inference.ops import (
    STAGES, AvgPool, Elementwise, GraphError, MaxPool, Pack, PackAccumulator, Reduce, Slice, Spec, Ufunc, build_op,
)

# ---- naive twins -------------------------------------------------------------------------------------


def naive_steps(stages, params, x, other=None):
    """The elementwise node's steps as the naive twin of numbnn.kernels.steps runs them."""
    codes = [STAGES[s][0] for s in stages]
    first_rows = np.cumsum([0] + [STAGES[s][1] for s in stages[:-1]]).astype(np.int64)
    rows = x.reshape(-1, x.shape[-1])
    other_rows = np.zeros((1, 1), np.float32) if other is None else other.reshape(-1, other.shape[-1])
    return naive.run_steps(codes, first_rows, params, rows, other_rows, rows.shape[0] // other_rows.shape[0]).reshape(x.shape)


# ---- packing -------------------------------------------------------------------------------------------


@settings(max_examples=50)
@given(st.integers(1, 3), st.sampled_from([1, 2, 3]), st.one_of(st.integers(1, 90), st.sampled_from([1, 2, 8, 16, 32, 64])),
       st.integers(1, 13), st.integers(0, 2**32 - 1))
def test_pack_with_thresholds_matches_naive(batch, groups, per_group, width, seed):
    """Divisors of 64 as the channel count (one group) take the several-rows-per-word path; odd row counts
    leave a partial last word of rows."""
    rng = np.random.default_rng(seed)
    channels = groups * per_group
    x = rng.standard_normal((batch, 3, width, channels)).astype(np.float32)
    threshold = (rng.standard_normal(channels) * 0.5).astype(np.float32)
    x[0, 0, 0] = threshold  # x == t exactly: not below, bit 0
    x[..., :1] = np.float32(-0.0)
    got = Pack({"groups": groups}, {"threshold": threshold})(x)
    np.testing.assert_array_equal(got, naive.pack_grouped(x < threshold, groups))
    # x + b < 0 <=> x < -b: folding a bias into the threshold does not change a bit
    np.testing.assert_array_equal(Pack({"groups": groups}, {"threshold": -threshold})(x),
                                  naive.pack_grouped((x + threshold) < 0, groups))


@settings(max_examples=40)
@given(st.integers(1, 3), st.sampled_from([1, 2, 4]), st.integers(1, 80), st.integers(0, 2**32 - 1))
def test_pack_acc_matches_naive(batch, groups, per_group, seed):
    rng = np.random.default_rng(seed)
    channels = groups * per_group
    acc = rng.integers(-40, 40, (batch, 2, 3, channels)).astype(np.int32)
    threshold = rng.integers(-45, 45, channels).astype(np.int32)
    flip = rng.random(channels) < 0.5
    got = PackAccumulator({"groups": groups}, {"threshold": threshold, "flip": flip})(acc)
    np.testing.assert_array_equal(got, naive.pack_grouped((acc < threshold) != flip, groups))


# ---- per-channel steps ----------------------------------------------------------------------------------


@settings(max_examples=80)
@given(st.lists(st.sampled_from(sorted(STAGES)), min_size=1, max_size=5),
       st.one_of(st.integers(1, 70), st.sampled_from([1, 2, 4, 8, 16, 32])),
       st.sampled_from(["same", "per_image", "repeated"]), st.booleans(), st.sampled_from([(3, 5), (4, 8)]),
       st.booleans(), st.integers(0, 2**32 - 1))
def test_steps_match_numpy_bit_for_bit(stages, channels, other_kind, int_input, pixels, in_place, seed):
    """Channel counts dividing 64 run as rows of 64 elements when the second input allows it (4 x 8 pixels:
    whole rows per image, so a per-image gate too); ``in_place`` overwrites x as the runtime does."""
    rng = np.random.default_rng(seed)
    inputs = [s for s in stages if STAGES[s][2]]
    if len(set(inputs)) > 1:
        stages = [s for s in stages if not STAGES[s][2]] + inputs[:1]
    rows = sum(STAGES[s][1] for s in stages)
    params = rng.standard_normal((rows, channels)).astype(np.float32)
    shape = (2, *pixels, channels)
    x = rng.integers(-30, 30, shape).astype(np.int32) if int_input else rng.standard_normal(shape).astype(np.float32)
    other = None
    if any(STAGES[s][2] for s in stages):
        width = channels * (2 + seed % 6) if "add_mean_input" in stages else channels  # add_mean_input: k*C, k 2-7
        if other_kind == "per_image":
            other = rng.standard_normal((2, 1, 1, width)).astype(np.float32)
        elif other_kind == "repeated" and channels % 2 == 0 and width == channels:
            other = rng.standard_normal((*shape[:-1], channels // 2)).astype(np.float32)
        else:
            other = rng.standard_normal(shape[:-1] + (width,)).astype(np.float32)
    op = Elementwise({"stages": stages}, {"params": params})
    expected = naive_steps(stages, params, x, other)
    out = {"out": x} if in_place and not int_input else {}
    got = op(x, **out) if other is None else op(x, other, **out)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(got, expected)


def test_steps_on_few_channels_run_as_wide_rows():
    """A 1-channel image, 32 channels with a per-image gate or a same-shape residual: rows of 64
    elements; a residual with repeated channels, or 48 channels: rows of C."""
    rng = np.random.default_rng(0)

    def wide(channels, stages, other_shape=None):
        op = Elementwise({"stages": stages}, {"params": rng.standard_normal((1, channels)).astype(np.float32)})
        x2 = rng.standard_normal((2 * 64, channels)).astype(np.float32)
        other2, div = op.other_rows(None if other_shape is None else np.zeros(other_shape, np.float32), len(x2))
        return op._wide_rows(x2, other2, div, 2) is not None

    assert wide(1, ["mul"]) and wide(32, ["mul", "mul_input"], (2, 32)) and wide(32, ["mul", "add_input"], (2 * 64, 32))
    assert not wide(32, ["mul", "add_input"], (2 * 64, 16)) and not wide(48, ["mul"])


def test_steps_reject_a_bad_description():
    with pytest.raises(GraphError, match="stages"):
        Elementwise({"stages": ["exp"]}, {"params": np.zeros((0, 3), np.float32)})
    with pytest.raises(GraphError, match="parameter rows"):
        Elementwise({"stages": ["affine"]}, {"params": np.zeros((1, 3), np.float32)})
    with pytest.raises(GraphError, match="float32"):
        Elementwise({"stages": []}, {"params": np.zeros((0, 3), np.float64)})
    averaged = Elementwise({"stages": ["add_mean_input"]}, {"params": np.zeros((0, 3), np.float32)})
    assert averaged.output_spec([Spec("float32", (4, 3)), Spec("float32", (4, 6))]) == Spec("float32", (4, 3))
    for width in (3, 7, 24):  # one value per channel, not whole groups, groups of 8
        with pytest.raises(GraphError, match="does not fit"):
            averaged.output_spec([Spec("float32", (4, 3)), Spec("float32", (4, width))])


# ---- ops that must equal the float model's functions ---------------------------------------------------------


@settings(max_examples=40)
@given(st.sampled_from(["avg", "max"]), st.integers(1, 9), st.integers(1, 9), st.integers(1, 3), st.integers(1, 3),
       st.booleans(), st.integers(0, 2**32 - 1))
def test_pooling_equals_the_float_model(pool, h, w, kernel, stride, same, seed):
    if not same and (h < kernel or w < kernel):
        return
    op, function = {"avg": (AvgPool, F.avg_pool2d), "max": (MaxPool, F.max_pool2d)}[pool]
    x = np.random.default_rng(seed).standard_normal((2, h, w, 5)).astype(np.float32)
    padding = "same" if same else [0, 0]
    expected = function(Tensor(x), kernel, stride, "same" if same else 0).data
    got = op({"kernel_size": [kernel, kernel], "stride": [stride, stride], "padding": padding}, {})(x)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("fn", sorted(Ufunc.FUNCTIONS))
def test_ufunc_equals_numpy_with_inputs_and_constants_in_their_order(fn):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, 2, 3, 4, 5)).astype(np.float32)
    b = (rng.standard_normal(5) + 3).astype(np.float32)  # away from 0, for divide
    ufunc = getattr(np, fn)
    if Ufunc.FUNCTIONS[fn] == 1:
        np.testing.assert_array_equal(Ufunc({"fn": fn, "operands": ["input:0"]}, {})(x), ufunc(x))
        return
    with_const = Ufunc({"fn": fn, "operands": ["const:b", "input:0"]}, {"b": b})
    assert with_const.output_spec([Spec("float32", x.shape[1:])]) == Spec("float32", x.shape[1:])
    np.testing.assert_array_equal(with_const(x), ufunc(b, x))
    np.testing.assert_array_equal(Ufunc({"fn": fn, "operands": ["input:1", "input:0"]}, {})(x, y), ufunc(y, x))


@pytest.mark.parametrize("name, attrs, expected", [
    ("concat", {"axis": -1}, lambda x, y: np.concatenate([x, y], axis=-1)),
    ("reshape", {"shape": [{"batch": 1}, -1, 4]}, lambda x: x.reshape(x.shape[0], -1, 4)),
    ("transpose", {"axes": [0, 2, 1, 3]}, lambda x: np.transpose(x, (0, 2, 1, 3))),
    ("pad", {"pad_width": [[0, 0], [1, 2], [0, 1], [0, 0]], "value": -1.0},
     lambda x: np.pad(x, ((0, 0), (1, 2), (0, 1), (0, 0)), constant_values=-1.0)),
    ("slice", {"index": [[None, None, None], [1, None, 2], [None, -1, None]]}, lambda x: x[:, 1::2, :-1]),
])
def test_movement_ops_equal_numpy(name, attrs, expected):
    inputs = list(np.random.default_rng(3).standard_normal((2, 2, 5, 6, 4)).astype(np.float32))
    inputs = inputs[:expected.__code__.co_argcount]
    op = build_op(name, attrs, {})
    want = expected(*inputs)
    np.testing.assert_array_equal(op(*inputs), want)
    assert op.output_spec([Spec("float32", x.shape[1:]) for x in inputs]) == Spec("float32", want.shape[1:])


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


def test_squeeze_excite_equals_its_nodes_and_rejects_a_bad_description():
    """The fused gate against reduce, elementwise, linear, elementwise, linear, elementwise and reshape run one by
    one; a step reading a second input, a missing weight and mismatched layers are refused."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 4, 12)).astype(np.float32)
    fq = np.array([[-1.0] * 12, [1.0] * 12, [2 / 255] * 12], np.float32)
    consts = {"params_1": fq, "weight_1": rng.standard_normal((3, 12)).astype(np.float32),
              "bias_1": rng.standard_normal(3).astype(np.float32), "params_2": np.zeros((0, 3), np.float32),
              "weight_2": rng.standard_normal((12, 3)).astype(np.float32), "params_3": np.zeros((0, 12), np.float32)}
    stages = [["fake_quant"], ["relu"], ["hard_sigmoid"]]
    gate = build_op("squeeze_excite", {"stages": stages}, consts)
    assert gate.output_spec([Spec("float32", (5, 4, 12))]) == Spec("float32", (1, 1, 12))
    value = Reduce({"fn": "mean", "axis": [1, 2], "keepdims": False}, {})(x)
    value = Elementwise({"stages": stages[0]}, {"params": fq})(value)
    value = build_op("linear", {}, {"weight": consts["weight_1"], "bias": consts["bias_1"]})(value)
    value = Elementwise({"stages": stages[1]}, {"params": consts["params_2"]})(value)
    value = build_op("linear", {}, {"weight": consts["weight_2"]})(value)
    value = Elementwise({"stages": stages[2]}, {"params": consts["params_3"]})(value)
    np.testing.assert_array_equal(gate(x), value.reshape(3, 1, 1, 12))
    with pytest.raises(GraphError, match="second input"):
        build_op("squeeze_excite", {"stages": [["add_input"], [], []]}, {**consts, "params_1": np.zeros((0, 12), np.float32)})
    with pytest.raises(GraphError, match="weight"):
        build_op("squeeze_excite", {"stages": stages}, {k: v for k, v in consts.items() if k != "weight_2"})
    with pytest.raises(GraphError, match="weight_2 must take 3"):
        build_op("squeeze_excite", {"stages": stages}, {**consts, "weight_2": np.ones((12, 4), np.float32)})


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


@settings(max_examples=25)
@given(st.integers(1, 7), st.integers(1, 3), st.sampled_from([1, 2]), st.sampled_from([(1, 0), (3, 1), (2, 0)]),
       st.integers(0, 2**32 - 1))
def test_depthwise_conv_equals_the_float_model(channels, mult, stride, kernel_padding, seed):
    from numbnn.inference.ops import Conv2d

    rng = np.random.default_rng(seed)
    kernel, padding = kernel_padding
    x = rng.standard_normal((2, 6, 5, channels)).astype(np.float32)
    w = rng.standard_normal((channels * mult, kernel, kernel, 1)).astype(np.float32)
    bias = rng.standard_normal(channels * mult).astype(np.float32)
    expected = F.conv2d(Tensor(x), Tensor(w), Tensor(bias), stride, padding, 1, channels).data
    op = Conv2d({"groups": channels, "stride": [stride] * 2, "padding": [padding] * 2, "dilation": [1, 1]},
                {"weight": w, "bias": bias})
    np.testing.assert_array_equal(op(x), expected)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from([16, 32, 33]), st.sampled_from([1, 2]), st.sampled_from([["affine"], ["affine", "dprelu", "relu"]]),
       st.integers(0, 2**32 - 1))
def test_fused_stem_and_steps_equal_the_two_ops(outputs, stride, stages, seed):
    """conv2d_steps (a 1-channel 3x3 stem and its steps, row by row) writes what conv2d then elementwise write,
    bit for bit, and refuses what its kernel cannot do."""
    from numbnn.inference.ops import Conv2d, Conv2dSteps

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 9, 8, 1)).astype(np.float32)
    w = rng.standard_normal((outputs, 3, 3, 1)).astype(np.float32)
    params = rng.standard_normal((sum(STAGES[s][1] for s in stages), outputs)).astype(np.float32)
    attrs = {"groups": 1, "stride": [stride] * 2, "padding": [1, 1], "dilation": [1, 1]}
    expected = Elementwise({"stages": stages}, {"params": params})(Conv2d(attrs, {"weight": w})(x))
    fused = Conv2dSteps({**attrs, "stages": stages}, {"weight": w, "params": params})
    assert fused.output_spec([Spec("float32", x.shape[1:])]).shape == expected.shape[1:]
    np.testing.assert_array_equal(fused(x).view(np.int32), expected.view(np.int32))
    with pytest.raises(GraphError, match="3x3 conv of one input channel"):
        Conv2dSteps({**attrs, "stages": stages}, {"weight": w[:, :2, :2], "params": params})
    with pytest.raises(GraphError, match="second input"):
        Conv2dSteps({**attrs, "stages": ["add_input"]}, {"weight": w, "params": np.zeros((0, outputs), np.float32)})


@pytest.mark.parametrize("shape, axis, keepdims", [((3, 4, 4, 5, 2), [-1], False), ((2, 3, 3, 7, 3), [4], True),
                                                   ((2, 5, 5, 6), [1, 2], True)])
def test_means_equal_numpy(shape, axis, keepdims):
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    got = Reduce({"fn": "mean", "axis": axis, "keepdims": keepdims}, {})(x)
    np.testing.assert_array_equal(got, x.mean(axis=tuple(axis), keepdims=keepdims))


@settings(max_examples=50)
@given(st.integers(1, 3), st.integers(2, 9), st.sampled_from([1, 2, 4]),
       st.sampled_from([2, 4, 8, 16, 32, 3, 6, 12, 33, 40, 64, 70]),  # divisors of 64 take the dense tap packing
       st.integers(1, 40), st.sampled_from([(1, 0, 1), (3, 1, 1), (3, 1, 2), (2, 0, 2)]), st.sampled_from([0, 1, -1]),
       st.sampled_from(["block", "unit", "other_steps"]), st.sampled_from(["same", "repeated", "per_image"]), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_fused_conv_and_steps_equal_the_two_ops(batch, size, groups, per_group, outputs, geometry, pad_value, steps,
                                               other_kind, zero_at_kink, seed):
    """Bit for bit (the sign of a zero included): the ReActNet block's steps take the one-pass
    block_epilogue, FTBNN's unit the one-pass unit_epilogue, others apply_steps; zero_at_kink puts
    RPReLU's input exactly at its kink (u = 0)."""
    from numbnn.kernels import pack_conv_weight

    rng = np.random.default_rng(seed)
    kernel, padding, stride = geometry
    channels, out_channels = groups * per_group, groups * outputs
    conv_attrs = {"in_channels": channels, "groups": groups, "stride": [stride] * 2, "padding": [padding] * 2,
                  "dilation": [1, 1], "pad_value": pad_value}
    weight = pack_conv_weight(rng.standard_normal((out_channels, kernel, kernel, per_group)).astype(np.float32))
    stages = {"block": ["mul", "affine", "add_input", "dprelu"], "unit": ["affine", "dprelu", "add_input"],
              "other_steps": ["affine", "dprelu", "mul_input"]}[steps]
    params = rng.standard_normal((7 if steps == "block" else 6, out_channels)).astype(np.float32)
    x = Pack({"groups": groups}, {})(rng.standard_normal((batch, size, size, channels)).astype(np.float32))
    conv = build_op("bconv", conv_attrs, {"weight": weight})
    acc = conv(x)
    other_shape = {"same": acc.shape, "per_image": (batch, 1, 1, out_channels),
                   "repeated": acc.shape[:3] + (out_channels // 2 if out_channels % 2 == 0 else out_channels,)}[other_kind]
    other = rng.standard_normal(other_shape).astype(np.float32)
    if zero_at_kink and steps == "block":  # u = 0 at the first pixel; pos < 0 < neg tells -0.0 from +0.0
        params[3] = Elementwise({"stages": stages[:3]}, {"params": params[:3]})(acc, other)[0, 0, 0]
        params[4], params[5], params[6] = -0.5, 0.25, 0.0
    expected = Elementwise({"stages": stages}, {"params": params})(acc, other)
    fused = build_op("bconv_steps", {**conv_attrs, "stages": stages}, {"weight": weight, "params": params})
    got = fused(x, other)
    np.testing.assert_array_equal(got.view(np.int32), expected.view(np.int32))
    np.testing.assert_array_equal(got.view(np.int32), naive_steps(stages, params, acc, other).view(np.int32))


@settings(max_examples=40)
@given(st.integers(1, 3), st.integers(2, 7), st.sampled_from([1, 2]), st.sampled_from([2, 8, 32, 40, 64, 70]),
       st.one_of(st.integers(1, 70), st.sampled_from([32, 64])), st.sampled_from([(1, 0, 1), (3, 1, 1), (3, 1, 2)]),
       st.sampled_from([1, 2, 3]), st.sampled_from(["block", "other_steps"]), st.booleans(), st.integers(0, 2**32 - 1))
def test_fused_conv_that_packs_its_output_equals_steps_then_pack(batch, size, groups, per_group, outputs, geometry,
                                                                 pack_groups, steps, at_threshold, seed):
    """bconv_steps with pack_groups/pack_threshold writes the same float output as without, and its bits
    equal the naive packing of that output (bit = y < threshold, per pack group, tails 0), exactly at
    the threshold included."""
    from numbnn.kernels import pack_conv_weight

    rng = np.random.default_rng(seed)
    kernel, padding, stride = geometry
    channels, out_channels = groups * per_group, groups * pack_groups * outputs
    attrs = {"in_channels": channels, "groups": groups, "stride": [stride] * 2, "padding": [padding] * 2,
             "dilation": [1, 1], "pad_value": 0,
             "stages": ["mul", "affine", "add_input", "dprelu"] if steps == "block" else ["affine", "dprelu"]}
    consts = {"weight": pack_conv_weight(rng.standard_normal((out_channels, kernel, kernel, per_group)).astype(np.float32)),
              "params": rng.standard_normal((7 if steps == "block" else 6, out_channels)).astype(np.float32)}
    x = Pack({"groups": groups}, {})(rng.standard_normal((batch, size, size, channels)).astype(np.float32))
    inputs = [x]
    if steps == "block":
        ho = (size + 2 * padding - kernel) // stride + 1
        inputs.append(rng.standard_normal((batch, ho, ho, out_channels)).astype(np.float32))
    expected = build_op("bconv_steps", attrs, consts)(*inputs)
    threshold = rng.standard_normal(out_channels).astype(np.float32)
    if at_threshold:  # the first pixel's values are the thresholds: y < t is false there
        threshold = expected[0, 0, 0].copy()
    fused = build_op("bconv_steps", {**attrs, "pack_groups": pack_groups}, {**consts, "pack_threshold": threshold})
    got, packed = fused(*inputs)
    np.testing.assert_array_equal(got.view(np.int32), expected.view(np.int32))
    np.testing.assert_array_equal(packed, naive.pack_grouped(expected < threshold, pack_groups))
    np.testing.assert_array_equal(packed, Pack({"groups": pack_groups}, {"threshold": threshold})(expected))
    assert fused.output_specs([Spec("uint64", x.shape[1:]), *[Spec("float32", v.shape[1:]) for v in inputs[1:]]]) \
        == [Spec("float32", got.shape[1:]), Spec("uint64", packed.shape[1:])]


@settings(max_examples=30)
@given(st.integers(1, 3), st.sampled_from([3, 4, 7, 8, 14]), st.sampled_from([(1, 0, 1), (3, 1, 1)]), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_fused_conv_that_pools_its_output_equals_steps_then_avg_pool(batch, size, geometry, pack, seed):
    """bconv_steps with pool_size 2 writes the same float output (and packed signs) as without, and last the
    2x2 "same" average pool of that output, exactly as the avg_pool node computes it (odd sizes included);
    told that nobody reads the float output, it returns None there and the same pool and signs."""
    from numbnn.kernels import pack_conv_weight

    rng = np.random.default_rng(seed)
    kernel, padding, stride = geometry
    attrs = {"in_channels": 24, "groups": 1, "stride": [stride] * 2, "padding": [padding] * 2, "dilation": [1, 1],
             "pad_value": 0, "stages": ["mul", "affine", "add_input", "dprelu"], **({"pack_groups": 1} if pack else {})}
    consts = {"weight": pack_conv_weight(rng.standard_normal((40, kernel, kernel, 24)).astype(np.float32)),
              "params": rng.standard_normal((7, 40)).astype(np.float32)}
    x = Pack({"groups": 1}, {})(rng.standard_normal((batch, size, size, 24)).astype(np.float32))
    other = rng.standard_normal((batch, size, size, 40)).astype(np.float32)
    unpooled = build_op("bconv_steps", attrs, consts)(x, other)
    fused = build_op("bconv_steps", {**attrs, "pool_size": 2}, consts)
    got = fused(x, other)
    expected = unpooled if pack else (unpooled,)
    for a, b in zip(got[:-1], expected):
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))
    pool = build_op("avg_pool", {"kernel_size": [2, 2], "stride": [2, 2], "padding": "same"}, {})
    np.testing.assert_array_equal(got[-1].view(np.int32), pool(expected[0]).view(np.int32))
    specs = fused.output_specs([Spec("uint64", x.shape[1:]), Spec("float32", other.shape[1:])])
    assert [s.shape for s in specs] == [a.shape[1:] for a in got]
    fused.drop_outputs({0})  # nothing reads the float map: it is not written, the rest is unchanged
    dropped = fused(x, other)
    assert dropped[0] is None
    for a, b in zip(dropped[1:], got[1:]):
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


def test_fused_pooling_rejects_what_it_cannot_do():
    from numbnn.kernels import pack_conv_weight
    from numbnn.kernels.binary_conv_driver import CONV_BLOCK

    attrs = {"in_channels": 8, "groups": 1, "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "pad_value": 0,
             "stages": ["affine"]}
    consts = {"weight": pack_conv_weight(np.ones((4, 1, 1, 8), np.float32)), "params": np.ones((2, 4), np.float32)}
    with pytest.raises(GraphError, match="pool_size must be 2"):
        build_op("bconv_steps", {**attrs, "pool_size": 3}, consts)
    wide = build_op("bconv_steps", {**attrs, "pool_size": 2}, consts)
    with pytest.raises(GraphError, match="rows of at most"):
        wide.output_specs([Spec("uint64", (2, CONV_BLOCK // 2 + 1, 1))])


def _movement_nodes(move: str, source: int = 0):
    """Movement nodes on an [N, 4, 6, 12] value ``source``, writing values source + 1 .. source + 3."""
    from numbnn.inference.graph import Node

    v = [source + i for i in range(4)]
    if move == "shuffle":
        nodes = [Node("reshape", [v[0]], v[1], {"shape": [{"batch": 1}, 4, 6, 3, 4]}),
                 Node("transpose", [v[1]], v[2], {"axes": [0, 1, 2, 4, 3]}),
                 Node("reshape", [v[2]], v[3], {"shape": [{"batch": 1}, 4, 6, 12]})]
    elif move == "space_to_depth":
        nodes = [Node("reshape", [v[0]], v[1], {"shape": [{"batch": 1}, 2, 2, 3, 2, 12]}),
                 Node("transpose", [v[1]], v[2], {"axes": [0, 1, 3, 2, 4, 5]}),
                 Node("reshape", [v[2]], v[3], {"shape": [{"batch": 1}, 2, 3, 48]})]
    elif move == "shift":
        nodes = [Node("slice", [v[0]], v[1], {"index": [[None, None, None], [-1, None, None]]}),
                 Node("slice", [v[0]], v[2], {"index": [[None, None, None], [None, -1, None]]}),
                 Node("concat", [v[1], v[2]], v[3], {"axis": 1})]
    else:
        nodes = [Node("pad", [v[0]], v[1], {"pad_width": [[0, 0], [1, 0], [0, 1], [0, 0]], "value": 1.0}),
                 Node("slice", [v[1]], v[2], {"index": [[None, None, None], [None, None, None], [1, None, None]]}),
                 Node("pad", [v[2]], v[3], {"pad_width": [[0, 0], [0, 0], [0, 0], [0, 4]], "value": -2.0})]
    return nodes


@settings(max_examples=30)
@given(st.sampled_from(["shuffle", "space_to_depth", "shift", "pad"]), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_gather_pack_equals_packing_the_moved_tensor(move, batch, seed):
    from numbnn.inference.graph import Graph, Node, Program
    from numbnn.inference.fuse.movements import fold_movements_into_packs, fold_movements_into_steps

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 4, 6, 12)).astype(np.float32)
    nodes = _movement_nodes(move)
    channels = Program(Graph(nodes, 0, 3, Spec("float32", x.shape[1:]))).specs[3].shape[-1]
    threshold = rng.standard_normal(channels).astype(np.float32)
    pack = Node("pack", [3], 4, {"groups": 2}, {"threshold": threshold})
    graph = Graph(nodes + [pack], 0, 4, Spec("float32", x.shape[1:]))
    expected = Program(graph).run(x)
    fold_movements_into_packs(graph)
    assert [n.op for n in graph.nodes] == ["gather_pack"]
    program = Program(graph)
    assert (program.ops[0].shuffle == 3) == (move == "shuffle")  # a shuffle packs through pack_below's interleave
    np.testing.assert_array_equal(program.run(x), expected)
    # the same moves read by per-channel steps
    steps = Node("elementwise", [3], 4, {"stages": ["affine", "dprelu"]},
                 {"params": rng.standard_normal((6, channels)).astype(np.float32)})
    graph = Graph(copy.deepcopy(nodes) + [steps], 0, 4, Spec("float32", x.shape[1:]))
    expected = Program(graph).run(x)
    fold_movements_into_steps(graph)
    assert [n.op for n in graph.nodes] == ["elementwise"] and "moves" in graph.nodes[0].attrs
    np.testing.assert_array_equal(Program(graph).run(x), expected)


@settings(max_examples=30)
@given(st.sampled_from(["shuffle", "space_to_depth", "shift", "pad"]), st.sampled_from(["add", "sub"]), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_a_shift_before_the_moves_is_added_by_the_gather_pack(move, stage, earlier_steps, seed):
    """x + b (or x - b) moved around and packed: the gather_pack adds b itself and the steps node goes
    (or loses its last step), bit for bit; sums that are exactly 0 included."""
    from numbnn.inference.fuse.movements import fold_movements_into_packs
    from numbnn.inference.fuse.packs import fold_shifts_into_gather_packs
    from numbnn.inference.graph import Graph, Node, Program

    rng = np.random.default_rng(seed)
    b = rng.standard_normal(12).astype(np.float32)
    x = rng.standard_normal((2, 4, 6, 12)).astype(np.float32)
    x[:, ::2, ::3] = -b if stage == "add" else b  # x + b == 0 exactly on these pixels
    stages = (["affine"] if earlier_steps else []) + [stage]
    affine = np.stack([rng.uniform(0.5, 2.0, 12), rng.standard_normal(12)]).astype(np.float32)
    params = np.concatenate([affine, b[None]]) if earlier_steps else b[None]
    steps = Node("elementwise", [0], 1, {"stages": stages}, {"params": params})
    nodes = [steps] + _movement_nodes(move, source=1)
    channels = Program(Graph(copy.deepcopy(nodes), 0, 4, Spec("float32", x.shape[1:]))).specs[4].shape[-1]
    pack = Node("pack", [4], 5, {"groups": 1}, {"threshold": np.zeros(channels, np.float32)})
    graph = Graph(nodes + [pack], 0, 5, Spec("float32", x.shape[1:]))
    expected = Program(graph).run(x)
    fold_movements_into_packs(graph)
    fold_shifts_into_gather_packs(graph)
    assert [n.op for n in graph.nodes] == (["elementwise"] if earlier_steps else []) + ["gather_pack"]
    assert "shift" in graph.nodes[-1].consts
    np.testing.assert_array_equal(Program(graph).run(x), expected)


def test_steps_overwrite_their_input_only_when_no_one_reads_it_again(monkeypatch):
    """Element-wise steps write over their first input when that value is dead (Program's in-place
    steps); never over the graph's input, a value read later, or a value a live reshape views."""
    import numbnn.inference.graph
    from numbnn.inference.graph import Graph, Node, Program

    monkeypatch.setattr(numbnn.inference.graph, "IN_PLACE_MIN_BYTES", 0)  # these arrays are small

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 8)).astype(np.float32)
    params = rng.standard_normal((2, 8)).astype(np.float32)

    def affine(source, target):
        return Node("elementwise", [source], target, {"stages": ["affine"]}, {"params": params})

    expected_1 = x * params[0] + params[1]
    expected_2 = expected_1 * params[0] + params[1]
    nodes = [affine(0, 1),                                                     # never over the graph's input
             Node("reshape", [1], 2, {"shape": [{"batch": 1}, 3, 32]}),         # a view of value 1 ...
             affine(1, 3),                                                     # ... so 1 stays: 4 is still read
             Node("reshape", [2], 4, {"shape": [{"batch": 1}, 3, 4, 8]}),
             affine(3, 5),                                                     # 3 is dead: overwritten
             Node("elementwise", [5, 4], 6, {"stages": ["add_input"]}, {"params": np.zeros((0, 8), np.float32)})]
    program = Program(Graph(nodes, 0, 6, Spec("float32", x.shape[1:])))
    # planned in place where the first input is dead after the node; node 2's is refused at run time,
    # since value 2, a view of value 1, is read later (value 6 = value 5 + value 1 as it was)
    assert [step[4] for step in program.steps] == [False, False, True, False, True, True]
    before = x.copy()
    got = program.run(x)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(got, (expected_2 * params[0] + params[1]) + expected_1)


def _depth_to_space_moves(h, w, runs_side, width, crop):
    """Moves of an [h, w, runs_side^2 * width] map to [h*r, w*r, width] pixels (RB-Net's depth-to-space), then
    the last ``crop`` rows and columns cut off (its odd maps)."""
    r = runs_side
    moves = [{"op": "reshape", "inputs": [0], "attrs": {"shape": [{"batch": 1}, h, w, r, r, width]}},
             {"op": "transpose", "inputs": [1], "attrs": {"axes": [0, 1, 3, 2, 4, 5]}},
             {"op": "reshape", "inputs": [2], "attrs": {"shape": [{"batch": 1}, h * r, w * r, width]}}]
    if crop:
        moves.append({"op": "slice", "inputs": [3], "attrs": {"index": [[None, None, None], [0, h * r - crop, None],
                                                                          [0, w * r - crop, None], [None, None, None]]}})
    return moves


@settings(max_examples=30)
@given(st.integers(1, 3), st.integers(1, 5), st.sampled_from([8, 32, 64, 70]), st.sampled_from([1, 2]),
       st.sampled_from([1, 3, 16, 32]), st.integers(0, 1), st.integers(0, 2**32 - 1))
def test_fused_conv_that_moves_its_output_equals_steps_then_moved_steps(batch, size, channels, runs_side, width, crop,
                                                                        seed):
    """bconv_moved_steps (RB-Net's point-wise conv, scale and centring, then depth-to-space, batch norm,
    residual and RPReLU) writes the bits of bconv_steps followed by the elementwise node that reads its
    output through the moves; moves that are not whole runs of channels (a channel shuffle) are refused. With
    16-channel multiples it also packs its output as the next unit's gather_pack would (padding to even sides,
    space-to-depth, shift and thresholds), and refuses to pack through a channel shuffle."""
    from numbnn.kernels import pack_conv_weight

    rng = np.random.default_rng(seed)
    out_channels = runs_side * runs_side * width
    crop = crop if runs_side > 1 else 0
    conv_attrs = {"in_channels": channels, "groups": 1, "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1],
                  "pad_value": 0}
    weight = pack_conv_weight(rng.standard_normal((out_channels, 1, 1, channels)).astype(np.float32))
    params = rng.standard_normal((2, out_channels)).astype(np.float32)
    moved_params = rng.standard_normal((6, width)).astype(np.float32)
    moves = _depth_to_space_moves(size, size + 1, runs_side, width, crop)
    x = Pack({"groups": 1}, {})(rng.standard_normal((batch, size, size + 1, channels)).astype(np.float32))
    source_shape = [size, size + 1, out_channels]
    steps = build_op("bconv_steps", {**conv_attrs, "stages": ["mul", "add"]}, {"weight": weight, "params": params})
    after = Elementwise({"stages": ["affine", "add_input", "dprelu"], "moves": moves, "source_shape": source_shape},
                        {"params": moved_params})
    residual = rng.standard_normal((batch, size * runs_side - crop, (size + 1) * runs_side - crop, width)).astype(np.float32)
    expected = after(steps(x), residual)
    attrs = {**conv_attrs, "stages": ["mul", "add"], "moved_stages": ["affine", "add_input", "dprelu"],
             "moves": moves, "source_shape": source_shape}
    consts = {"weight": weight, "params": params, "moved_params": moved_params}
    fused = build_op("bconv_moved_steps", attrs, consts)
    got = fused(x, residual)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.view(np.int32), expected.view(np.int32))
    shuffle = [{"op": "reshape", "inputs": [0], "attrs": {"shape": [{"batch": 1}, size, size + 1, 2, out_channels // 2]}},
               {"op": "transpose", "inputs": [1], "attrs": {"axes": [0, 1, 2, 4, 3]}},
               {"op": "reshape", "inputs": [2], "attrs": {"shape": [{"batch": 1}, size, size + 1, out_channels]}}]
    if out_channels % 2 == 0 and out_channels > 2:
        with pytest.raises(GraphError, match="whole runs"):
            build_op("bconv_moved_steps", {**attrs, "moves": shuffle}, consts)
    if width % 16:
        return
    # packing its output as the next unit's gather_pack would: padded to even sides with +1, then space-to-depth
    h, w = expected.shape[1:3]
    ph, pw = h % 2, w % 2
    to_cells = [{"op": "pad", "inputs": [0], "attrs": {"pad_width": [[0, 0], [0, ph], [0, pw], [0, 0]], "value": 1.0}},
                {"op": "reshape", "inputs": [1], "attrs": {"shape": [{"batch": 1}, (h + ph) // 2, 2, (w + pw) // 2, 2, width]}},
                {"op": "transpose", "inputs": [2], "attrs": {"axes": [0, 1, 3, 2, 4, 5]}},
                {"op": "reshape", "inputs": [3], "attrs": {"shape": [{"batch": 1}, (h + ph) // 2, (w + pw) // 2, 4 * width]}}]
    pack_consts = {"threshold": rng.standard_normal(4 * width).astype(np.float32),
                   "shift": rng.standard_normal(width).astype(np.float32)}
    gather = build_op("gather_pack", {"groups": 1, "source_shape": [h, w, width], "moves": to_cells}, pack_consts)
    packing = build_op("bconv_moved_steps", {**attrs, "pack_moves": to_cells, "pack_source_shape": [h, w, width]},
                       {**consts, **{f"pack_{k}": v for k, v in pack_consts.items()}})
    values, bits = packing(x, residual)
    np.testing.assert_array_equal(values.view(np.int32), expected.view(np.int32))
    np.testing.assert_array_equal(bits, gather(expected))
    with pytest.raises(GraphError, match="16-channel groups"):
        build_op("bconv_moved_steps", {**attrs, "pack_moves": [
            {"op": "reshape", "inputs": [0], "attrs": {"shape": [{"batch": 1}, h, w, 2, width // 2]}},
            {"op": "transpose", "inputs": [1], "attrs": {"axes": [0, 1, 2, 4, 3]}},
            {"op": "reshape", "inputs": [2], "attrs": {"shape": [{"batch": 1}, h, w, width]}}],
            "pack_source_shape": [h, w, width]}, consts)
