"""Sign STEs, fake quantization, and the packed binary conv / linear ops.

binary_conv2d and binary_linear must equal the float reference conv2d(pad(sign(x)), sign(w)) * scale
*exactly* in the forward pass, and their gradients must equal the autograd gradients of that
reference built from the same straight-through estimators.
"""

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbnn.functional as F
import numbnn.functional.conv as conv_module
import numbnn.kernels
from numbnn.autograd import Tensor
from numbnn.autograd.function import Context
from numbnn.errors import InputError

GRID = np.array([-2.0, -1.5, -1.0, -0.75, -0.5, -0.25, -0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0])


def _grad_of(fn, x):
    t = Tensor(x, requires_grad=True)
    fn(t).backward(np.ones(x.shape, dtype=x.dtype))
    return t.grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sign_forward_values_and_dtype(dtype):
    x = GRID.astype(dtype)
    expected = np.where(x < 0, -1, 1).astype(dtype)  # -0.0 and 0.0 map to +1
    for fn in (F.sign, F.ste_sign, F.approx_sign):
        y = fn(x)
        assert y.dtype == dtype
        np.testing.assert_array_equal(y.data, expected)


@pytest.mark.parametrize("clip", [0.5, 1.0, 1.5])
def test_ste_sign_gradient_is_the_clip_mask(clip):
    grad = _grad_of(lambda t: F.sign(t, clip=clip), GRID)
    np.testing.assert_array_equal(grad, (np.abs(GRID) <= clip).astype(float))


def test_per_channel_ste_bounds_are_the_derivative_of_a_per_channel_clip():
    """sign(x) with bound B_c per channel (last axis): the gradient is that of clip(x_c, -B_c, B_c), checked
    by central differences away from the kinks |x_c| = B_c; a channel with a small bound passes
    gradient only inside its own window."""
    bounds = np.array([0.3, 1.2, 1.8])
    x = np.repeat(GRID[:, None], 3, axis=1)
    upstream = np.random.default_rng(0).standard_normal(x.shape)
    t = Tensor(x, requires_grad=True)
    F.sign(t, clip=bounds).backward(upstream)
    eps = 1e-6
    # elementwise, so the Jacobian is diagonal: one central difference per entry
    numeric = upstream * (np.clip(x + eps, -bounds, bounds) - np.clip(x - eps, -bounds, bounds)) / (2 * eps)
    np.testing.assert_allclose(t.grad, numeric, atol=1e-8)
    assert np.all(t.grad[np.abs(GRID) > 0.3, 0] == 0) and np.all(t.grad[np.abs(GRID) <= 0.3, 0] != 0)
    assert np.any(t.grad[(np.abs(GRID) > 0.3) & (np.abs(GRID) <= 1.2), 1] != 0)
    np.testing.assert_array_equal(F.sign(x, clip=bounds).data, F.sign(x).data)  # the forward is the sign


def test_approx_sign_gradient_is_the_triangle():
    grad = _grad_of(F.approx_sign, GRID)
    np.testing.assert_array_equal(grad, np.maximum(0.0, 2 - 2 * np.abs(GRID)))
    assert grad[GRID.tolist().index(0.5)] == 1.0 and grad[GRID.tolist().index(-0.25)] == 1.5


def test_sign_gradient_scales_the_incoming_gradient():
    x = Tensor(np.array([0.5, -0.5, 3.0]), requires_grad=True)
    F.sign(x).backward(np.array([2.0, -3.0, 5.0]))
    np.testing.assert_array_equal(x.grad, [2.0, -3.0, 0.0])


@pytest.mark.parametrize("bits,bound,signed", [(8, 1.0, True), (4, 2.5, True), (4, 1.0, False), (2, 1.0, True)])
def test_fake_quant_levels_and_straight_through_gradient(bits, bound, signed):
    x = np.linspace(-1.5 * bound, 1.5 * bound, 301)
    levels = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    lo = -bound if signed else 0.0
    step = bound / levels
    y = F.fake_quant(x, bits, bound, signed=signed).data
    np.testing.assert_allclose(y, np.round(np.clip(x, lo, bound) / step) * step, atol=1e-12)
    assert len(np.unique(np.round(y / step))) <= (2 * levels + 1 if signed else levels + 1)
    grad = _grad_of(lambda t: F.fake_quant(t, bits, bound, signed=signed), x)
    np.testing.assert_array_equal(grad, ((x >= lo) & (x <= bound)).astype(float))
    assert F.fake_quant(x.astype(np.float32), bits, bound).dtype == np.float32


def test_quantizer_registry_short_names_and_objects():
    """One registry: each quantizer under one name with its bit width; "ste", "approx" and None are
    short names for three of them; a Quantizer passes through unchanged."""
    assert {name: q.bits for name, q in F.QUANTIZERS.items()} == {"ste_sign": 1, "approx_sign": 1, "none": 32}
    assert all(q.name == name for name, q in F.QUANTIZERS.items())
    for short, name in (("ste", "ste_sign"), ("approx", "approx_sign"), (None, "none")):
        assert F.get_quantizer(short) is F.QUANTIZERS[name] is F.get_quantizer(name)
    custom = F.Quantizer("sign_unclipped", F.QUANTIZERS["ste_sign"].forward, lambda grad, x, clip, out=None: grad, 1)
    assert F.get_quantizer(custom) is custom
    with pytest.raises(InputError, match="act_quantizer"):
        F.get_quantizer("tanh")


def test_quantizer_objects_apply_their_forward_and_backward():
    x = Tensor(np.array([-1.5, -0.5, 0.0, 0.25, 0.9, 2.0]), requires_grad=True)
    y = F.get_quantizer("ste")(x, 1.0)
    np.testing.assert_array_equal(y.data, [-1, -1, 1, 1, 1, 1])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 1, 1, 1, 1, 0])
    x.grad = None
    F.get_quantizer("approx_sign")(x).sum().backward()
    np.testing.assert_allclose(x.grad, [0, 1, 2, 1.5, 0.2, 0], atol=1e-12)
    assert F.get_quantizer(None)(x) is x  # the identity records no op


@pytest.mark.parametrize("quantizer, clip", [("approx_sign", 1.0), ("ste_sign", 0.7), ("ste_sign", "per channel")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sign_mean_equals_the_mean_of_the_signs_with_the_same_gradient(quantizer, clip, dtype):
    """F.sign_mean(x) is the quantizer's signs then their mean over all axes but the last, bit for bit in
    both directions (exact zeros, -0.0 and a per-channel STE bound included)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 6, 7, 9)).astype(dtype)
    x[0, 0, :3] = 0.0
    x[1, 2, :3] = -0.0
    if clip == "per channel":
        clip = rng.uniform(0.3, 1.5, 9)
    upstream = rng.standard_normal(9).astype(dtype)
    fused_x, chain_x = Tensor(x.copy(), requires_grad=True), Tensor(x.copy(), requires_grad=True)
    fused = F.sign_mean(fused_x, quantizer, clip)
    chain = F.get_quantizer(quantizer)(chain_x, clip).mean(axis=(0, 1, 2))
    assert fused.data.dtype == chain.data.dtype == dtype
    np.testing.assert_array_equal(fused.data, chain.data)
    (fused * Tensor(upstream)).sum().backward()
    (chain * Tensor(upstream)).sum().backward()
    np.testing.assert_array_equal(fused_x.grad, chain_x.grad)
    with pytest.raises(InputError, match="1-bit sign quantizer"):
        F.sign_mean(x, None)
    for empty in (np.float32(1.0), np.zeros((0, 3), dtype)):
        with pytest.raises(InputError, match="sign_mean needs values along a channel axis"):
            F.sign_mean(empty)

def test_quantizer_argument_errors():
    with pytest.raises(InputError, match="clip"):
        F.sign(np.ones(2), clip=0)
    with pytest.raises(InputError, match="per-channel clip"):
        F.sign(np.ones((2, 3)), clip=np.ones(2))  # one bound per channel of the last axis
    with pytest.raises(InputError, match="per-channel act_clip"):
        F.binary_conv2d(np.ones((1, 2, 2, 3)), np.ones((1, 1, 1, 3)), act_clip=np.array([1.0, 0.0, 1.0]))
    with pytest.raises(InputError, match="bits"):
        F.fake_quant(np.ones(2), 1, 1.0)
    with pytest.raises(InputError, match="bound"):
        F.fake_quant(np.ones(2), 8, -1.0)


# ---- binary convolution ------------------------------------------------------------------------


def reference_binary_conv2d(x, w, stride, padding, dilation, groups, pad_value, act_quantizer, act_clip, weight_clip, scale):
    """The float definition, built from autograd ops: conv2d(pad(sign_STE(x), pad_value), sign_STE(w)) * scale."""
    sx = F.get_quantizer(act_quantizer)(x, act_clip)
    sx = F.pad(sx, ((0, 0), (padding, padding), (padding, padding), (0, 0)), value=pad_value)
    out = F.conv2d(sx, F.sign(w, clip=weight_clip), stride=stride, dilation=dilation, groups=groups)
    return out if scale is None else out * scale


@st.composite
def binary_conv_case(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.sampled_from([1, 3, 7, 64, 65]))
    og = draw(st.integers(1, 4))
    k = draw(st.sampled_from([1, 3]))
    dilation = draw(st.integers(1, 2))
    padding = draw(st.integers(0, 2))
    span = dilation * (k - 1) + 1
    h = draw(st.integers(max(1, span - 2 * padding), 6))
    w = draw(st.integers(max(1, span - 2 * padding), 6))
    return dict(
        shape_x=(draw(st.integers(1, 2)), h, w, cg * groups),
        shape_w=(og * groups, k, k, cg),
        stride=draw(st.integers(1, 2)),
        padding=padding,
        dilation=dilation,
        groups=groups,
        pad_value=draw(st.sampled_from([0, 1, -1])),
        act_quantizer=draw(st.sampled_from([F.QUANTIZERS["ste_sign"], F.QUANTIZERS["approx_sign"], "ste", "approx"])),
        act_clip=draw(st.sampled_from([1.0, 0.5, "per channel"])),
        weight_clip=draw(st.sampled_from([1.0, 0.3])),
        with_scale=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def _inputs(case, dtype):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["shape_x"]).astype(dtype)
    w = (0.5 * rng.standard_normal(case["shape_w"])).astype(dtype)
    scale = np.abs(rng.standard_normal(case["shape_w"][0])).astype(dtype) if case["with_scale"] else None
    options = {k: case[k] for k in ("stride", "padding", "dilation", "groups", "pad_value", "act_quantizer", "act_clip", "weight_clip")}
    if options["act_clip"] == "per channel":  # one STE bound per input channel (PokeBNN's clip_per_channel)
        options["act_clip"] = rng.uniform(0.2, 2.0, x.shape[-1])
    return x, w, scale, options


@settings(max_examples=40)
@given(binary_conv_case(), st.sampled_from([np.float32, np.float64]))
def test_binary_conv2d_forward_equals_float_reference_exactly(case, dtype):
    x, w, _, options = _inputs(case, dtype)
    out = F.binary_conv2d(x, w, **options)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.data, reference_binary_conv2d(x, w, scale=None, **options).data)


@settings(max_examples=20)
@given(binary_conv_case(), st.sampled_from([np.float32, np.float64]))
def test_binary_conv2d_constant_scale_forward_equals_float_reference_exactly(case, dtype):
    """A scale that needs no gradient (alpha = mean|W|) is applied in the cast from the integer sums."""
    x, w, _, options = _inputs(case, dtype)
    scale = (np.random.default_rng(case["seed"]).random(w.shape[0]) + 0.1).astype(dtype)
    out = F.binary_conv2d(x, w, scale=scale, **options)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.data, reference_binary_conv2d(x, w, scale=scale, **options).data)


@settings(max_examples=30)
@given(binary_conv_case())
def test_binary_conv2d_gradients_equal_reference_gradients(case):
    x, w, scale, options = _inputs(case, np.float64)
    rng = np.random.default_rng(case["seed"] + 1)
    tensors = [Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)]
    ref_tensors = [Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)]
    if scale is not None:
        tensors.append(Tensor(scale, requires_grad=True))
        ref_tensors.append(Tensor(scale, requires_grad=True))
    out = F.binary_conv2d(tensors[0], tensors[1], scale=tensors[2] if scale is not None else None, **options)
    ref = reference_binary_conv2d(ref_tensors[0], ref_tensors[1], scale=ref_tensors[2] if scale is not None else None, **options)
    np.testing.assert_array_equal(out.data, ref.data)
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    ref.backward(upstream)
    for got, want in zip(tensors, ref_tensors):
        np.testing.assert_allclose(got.grad, want.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pad_value,stride", [(-1, 1), (1, 2), (0, 1)])
def test_binary_conv2d_gradients_in_blocks_with_scale_equal_reference(monkeypatch, pad_value, stride):
    """Several image blocks (reused column buffers, a shorter last block), a per-channel scale folded
    into the weights, and padding taps of each value: the gradients of the float definition."""
    monkeypatch.setattr(conv_module, "BLOCK_ROWS", 2)  # one image per block
    rng = np.random.default_rng(pad_value + 5 * stride)
    x, w, scale = rng.standard_normal((3, 5, 4, 3)), 0.5 * rng.standard_normal((4, 3, 3, 3)), rng.random(4) + 0.5
    options = dict(stride=stride, padding=1, dilation=1, groups=1, pad_value=pad_value, act_quantizer="approx",
                   act_clip=1.0, weight_clip=1.0)
    got = [Tensor(x, requires_grad=True), Tensor(w, requires_grad=True), Tensor(scale, requires_grad=True)]
    want = [Tensor(x, requires_grad=True), Tensor(w, requires_grad=True), Tensor(scale, requires_grad=True)]
    out = F.binary_conv2d(got[0], got[1], scale=got[2], **options)
    ref = reference_binary_conv2d(want[0], want[1], scale=want[2], **options)
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    ref.backward(upstream)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "pad_value,stride,channels,groups",
    [(0, 1, 32, 1), (-1, 2, 33, 1), (1, 1, 40, 1), (0, 2, 66, 2), (-1, 1, 128, 4), (0, 1, 64, 4), (1, 2, 16, 1)],
)
def test_float32_weight_gradient_by_table_lookup_matches_float64_reference(monkeypatch, pad_value, stride, channels,
                                                                           groups):
    """float32 3x3 convs with K = 9 * C/groups >= LOOKUP_MIN_COLUMNS_SPATIAL: dW comes from
    kernels.sign_rows_matmul on packed (group) columns (padding taps corrected), equal to the float64
    definition up to float32 rounding."""
    from numbnn.functional import binary as binary_module

    assert 9 * channels // groups >= binary_module.LOOKUP_MIN_COLUMNS_SPATIAL
    calls = []
    product = numbnn.kernels.sign_rows_matmul
    monkeypatch.setattr(numbnn.kernels, "sign_rows_matmul", lambda *a: calls.append(1) or product(*a))
    rng = np.random.default_rng(channels)
    x, w = rng.standard_normal((3, 6, 5, channels)), 0.5 * rng.standard_normal((20, 3, 3, channels // groups))
    scale = rng.random(20) + 0.5
    options = dict(stride=stride, padding=1, dilation=1, groups=groups, pad_value=pad_value, act_quantizer="approx",
                   act_clip=1.0, weight_clip=1.0)
    x32, w32 = Tensor(x.astype(np.float32), requires_grad=True), Tensor(w.astype(np.float32), requires_grad=True)
    out = F.binary_conv2d(x32, w32, scale=scale.astype(np.float32), **options)
    x64, w64 = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    ref = reference_binary_conv2d(x64, w64, scale=scale, **options)
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream.astype(np.float32))
    ref.backward(upstream)
    assert calls == [1]
    for got, want in ((x32.grad, x64.grad), (w32.grad, w64.grad)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("act_quantizer", ["approx", "ste"])
def test_input_gradient_by_table_lookup_with_its_activation_factor(monkeypatch, act_quantizer):
    """float32 3x3 convs wide enough for the lookup input gradient, times ApproxSign's derivative or the
    STE's mask: equal to the float64 definition up to float32 rounding."""
    from numbnn.functional import binary as binary_module

    monkeypatch.setattr(binary_module, "LOOKUP_INPUT_GRAD_MIN_MACS", 0)
    calls = []
    kernel = numbnn.kernels.sign_conv_input_grad
    monkeypatch.setattr(numbnn.kernels, "sign_conv_input_grad", lambda *a, **k: calls.append(1) or kernel(*a, **k))
    rng = np.random.default_rng(7)
    x, w, scale = rng.uniform(-1.5, 1.5, (3, 6, 5, 32)), 0.5 * rng.standard_normal((40, 3, 3, 32)), rng.random(40) + 0.5
    options = dict(stride=1, padding=1, dilation=1, groups=1, pad_value=0, act_quantizer=act_quantizer,
                   act_clip=0.8, weight_clip=1.0)
    x32 = Tensor(x.astype(np.float32), requires_grad=True)
    out = F.binary_conv2d(x32, Tensor(w.astype(np.float32), requires_grad=True), scale=scale.astype(np.float32),
                          **options)
    x64 = Tensor(x, requires_grad=True)
    ref = reference_binary_conv2d(x64, Tensor(w, requires_grad=True), scale=scale, **options)
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream.astype(np.float32))
    ref.backward(upstream)
    assert calls == [1]
    np.testing.assert_allclose(x32.grad, x64.grad, rtol=1e-4, atol=1e-4 * np.abs(x64.grad).max())


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([(1, 1), (3, 1), (3, 2)]), st.sampled_from([1, 2]), st.sampled_from([(16, 32), (32, 40), (5, 3)]),
       st.sampled_from(["approx", "ste"]), st.sampled_from([0, 1, -1]), st.sampled_from([np.float32, np.float64]),
       st.booleans(), st.integers(0, 2**16))
def test_shift_equals_the_conv_of_x_plus_shift_bit_for_bit(kernel_stride, groups, channels, act_quantizer, pad_value,
                                                            dtype, lookup, seed):
    """binary_conv2d(x, w, shift=b) against binary_conv2d(x + b, w) (RSign's add as its own op): the output and
    the gradients of x, w, scale and b to the last bit, on the lookup paths (float32, thresholds at 0) and on
    BLAS's, with ApproxSign (b added inside its gradient kernel) and the STE (x + b computed in the backward)."""
    from numbnn.functional import binary as binary_module

    (k, stride), (c, o) = kernel_stride, channels
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.5, 1.5, (2, 5, 6, c * groups)).astype(dtype)
    w = rng.standard_normal((o * groups, k, k, c)).astype(dtype)
    scale = (rng.random(o * groups) + 0.5).astype(dtype)
    b = (0.3 * rng.standard_normal(c * groups)).astype(dtype)
    options = dict(stride=stride, padding=k // 2, groups=groups, pad_value=pad_value, act_quantizer=act_quantizer,
                   act_clip=0.8)
    upstream = rng.standard_normal((2, -(-5 // stride), -(-6 // stride), o * groups)).astype(dtype)
    lows = (0, 0, 0) if lookup else (10**9, 10**9, 10**9)
    results = []
    with mock.patch.multiple(binary_module, LOOKUP_INPUT_GRAD_MIN_MACS=lows[0], LOOKUP_MIN_COLUMNS=lows[1],
                             LOOKUP_MIN_COLUMNS_SPATIAL=lows[2]):
        for fused in (True, False):
            xt, wt, st_, bt = (Tensor(a.copy(), requires_grad=True) for a in (x, w, scale, b))
            y = F.binary_conv2d(xt, wt, scale=st_, shift=bt, **options) if fused else \
                F.binary_conv2d(xt + bt, wt, scale=st_, **options)
            y.backward(upstream)
            results.append([y.data, xt.grad, wt.grad, st_.grad, bt.grad])
    for got, want in zip(*results):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_shift_on_a_large_map_equals_the_conv_of_x_plus_shift():
    """A map above autograd's parallel threshold: the threshold's gradient comes from the chunk sums the
    ApproxSign kernel takes as it writes x's gradient, the bits of the Add's channel sums."""
    rng = np.random.default_rng(11)
    x = rng.uniform(-1.5, 1.5, (4, 12, 12, 128)).astype(np.float32)
    w, b = rng.standard_normal((64, 3, 3, 128)).astype(np.float32), (0.3 * rng.standard_normal(128)).astype(np.float32)
    upstream = rng.standard_normal((4, 12, 12, 64)).astype(np.float32)
    results = []
    for fused in (True, False):
        xt, wt, bt = (Tensor(a.copy(), requires_grad=True) for a in (x, w, b))
        y = F.binary_conv2d(xt, wt, padding=1, act_quantizer="approx", shift=bt) if fused else \
            F.binary_conv2d(xt + bt, wt, padding=1, act_quantizer="approx")
        y.backward(upstream)
        results.append([y.data, xt.grad, wt.grad, bt.grad])
    for got, want in zip(*results):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("stride", [1, 2])
def test_threshold_backward_takes_the_shortcuts_gradient_bit_for_bit(stride):
    """A residual block's x feeds the conv (shift, ApproxSign) and a shortcut (x itself, or its 2x2 average pool):
    the conv's one-pass backward adding the gradient the shortcut already sent (or the pool's adjoint adding the
    conv's) equals the unfused passes and the engine's addition to the last bit, the threshold's gradient too."""
    from numbnn.functional import binary as binary_module

    rng = np.random.default_rng(stride)
    x = rng.uniform(-1.5, 1.5, (4, 16, 16, 64)).astype(np.float32)
    w, b = rng.standard_normal((64, 3, 3, 64)).astype(np.float32), (0.3 * rng.standard_normal(64)).astype(np.float32)
    upstream = rng.standard_normal((4, 16 // stride, 16 // stride, 64)).astype(np.float32)
    taken, take = [], Context.take_pending_grad

    def counted(ctx, i, shape, dtype):
        pending = take(ctx, i, shape, dtype)
        taken.append(pending is not None)
        return pending

    results = []
    for fused in (True, False):
        xt, wt, bt = (Tensor(a.copy(), requires_grad=True) for a in (x, w, b))
        with mock.patch.object(Context, "take_pending_grad", counted if fused else lambda *args: None), \
                mock.patch.object(binary_module, "sums_by_chunks", binary_module.sums_by_chunks if fused else lambda g: False):
            conv = F.binary_conv2d(xt, wt, stride=stride, padding=1, act_quantizer="approx", shift=bt)
            y = conv * F.avg_pool2d(xt, 2, 2) if stride == 2 else conv * xt  # the shortcut's gradient depends on conv
            y.backward(upstream)
        results.append([y.data, xt.grad, wt.grad, bt.grad])
    assert any(taken)
    for got, want in zip(*results):
        np.testing.assert_array_equal(got, want)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([(1, 1), (3, 1), (3, 2)]), st.sampled_from([(2, 1), (4, 4), (4, 2), (3, 3)]),
       st.sampled_from([(16, 16), (8, 40), (5, 3)]), st.sampled_from(["approx", "ste"]), st.sampled_from([0, 1, -1]),
       st.sampled_from([np.float32, np.float64]), st.booleans(), st.booleans(), st.integers(0, 2**16))
def test_shuffle_groups_equals_the_conv_of_the_shuffled_map_bit_for_bit(kernel_stride, shuffle_conv_groups, channels,
                                                                         act_quantizer, pad_value, dtype, lookup,
                                                                         shortcut, seed):
    """binary_conv2d(x, w, shuffle_groups=S) against binary_conv2d(channel_shuffle(x, S), w): the output and the
    gradients of x, w and scale to the last bit, on the lookup paths and BLAS's, with ApproxSign (the one-pass
    unshuffle, taking the shortcut's gradient when x also feeds one) and the STE (its gradient, then the shuffle's)."""
    from numbnn.functional import binary as binary_module

    (k, stride), (shuffle, groups), (c, o) = kernel_stride, shuffle_conv_groups, channels
    rng = np.random.default_rng(seed)
    channels_in = c * groups * shuffle // np.gcd(groups, shuffle)
    x = rng.uniform(-1.5, 1.5, (2, 5, 6, channels_in)).astype(dtype)
    w = rng.standard_normal((o * groups, k, k, channels_in // groups)).astype(dtype)
    scale = (rng.random(o * groups) + 0.5).astype(dtype)
    options = dict(stride=stride, padding=k // 2, groups=groups, pad_value=pad_value, act_quantizer=act_quantizer,
                   act_clip=0.8)
    outputs = 2 * -(-5 // stride) * -(-6 // stride) * o * groups + (x.size if shortcut else 0)
    upstream = rng.standard_normal(outputs).astype(dtype).reshape(2, -1)
    lows = (0, 0, 0) if lookup else (10**9, 10**9, 10**9)
    results, taken, take = [], [], Context.take_pending_grad

    def counted(ctx, i, shape, dtype):
        pending = take(ctx, i, shape, dtype)
        taken.append(pending is not None)
        return pending

    with mock.patch.multiple(binary_module, LOOKUP_INPUT_GRAD_MIN_MACS=lows[0], LOOKUP_MIN_COLUMNS=lows[1],
                             LOOKUP_MIN_COLUMNS_SPATIAL=lows[2]), mock.patch.object(Context, "take_pending_grad", counted):
        for fused in (True, False):
            xt, wt, st_ = (Tensor(a.copy(), requires_grad=True) for a in (x, w, scale))
            y = F.binary_conv2d(xt, wt, scale=st_, shuffle_groups=shuffle, **options) if fused else \
                F.binary_conv2d(F.channel_shuffle(xt, shuffle), wt, scale=st_, **options)
            y = y.reshape(2, -1)
            if shortcut:  # x's other consumer sends its gradient first: the fused pass adds it
                y = F.concat([(xt * xt).reshape(2, -1), y], axis=-1)
            y.backward(upstream)
            results.append([y.data, xt.grad, wt.grad, st_.grad])
    assert any(taken) == (shortcut and act_quantizer == "approx")
    for got, want in zip(*results):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_shuffle_groups_takes_no_shift_and_must_divide_the_channels():
    x, w = np.ones((1, 3, 3, 4)), np.ones((2, 3, 3, 4))
    with pytest.raises(InputError, match="not both"):
        F.binary_conv2d(x, w, padding=1, shift=np.zeros(4), shuffle_groups=2)
    with pytest.raises(InputError, match="shuffle_groups must divide"):
        F.binary_conv2d(x, w, padding=1, shuffle_groups=3)


def test_shift_must_be_one_per_input_channel():
    with pytest.raises(InputError, match="shift must have shape"):
        F.binary_conv2d(np.ones((1, 3, 3, 4)), np.ones((2, 3, 3, 4)), padding=1, shift=np.zeros(3))


@st.composite
def grouped_conv_case(draw):
    """A grouped binary conv: 2-4 groups, odd channel counts per group, stride 2, padding, batch 1."""
    # 9 * 33 >= LOOKUP_MIN_COLUMNS_SPATIAL; 16: whole vectors of columns, the register-tiled input gradient
    groups, cg = draw(st.integers(2, 4)), draw(st.sampled_from([1, 3, 5, 16, 33]))
    k, padding = draw(st.sampled_from([1, 3])), draw(st.integers(0, 1))
    h, w = draw(st.integers(max(1, k - 2 * padding), 6)), draw(st.integers(max(1, k - 2 * padding), 6))
    og = draw(st.sampled_from([1, 3, 16, 17]))
    return dict(
        shape_x=(draw(st.integers(1, 2)), h, w, groups * cg), shape_w=(groups * og, k, k, cg),
        stride=draw(st.integers(1, 2)), padding=padding, dilation=1, groups=groups,
        pad_value=draw(st.sampled_from([0, 1, -1])), act_quantizer=draw(st.sampled_from(["ste", "approx"])),
        act_clip=draw(st.sampled_from([1.0, "per channel"])), weight_clip=1.0, with_scale=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def _per_group_binary_conv2d(x, w, scale, upstream, options):
    """Each group as its own ungrouped binary_conv2d on its channel slices, concatenated:
    (out, dx, dw, dscale or None)."""
    groups = options["groups"]
    cg, og = x.shape[-1] // groups, w.shape[0] // groups
    results = []
    for i in range(groups):
        ci, oi = slice(i * cg, (i + 1) * cg), slice(i * og, (i + 1) * og)
        xt, wt = Tensor(np.ascontiguousarray(x[..., ci]), requires_grad=True), Tensor(w[oi], requires_grad=True)
        st_ = None if scale is None else Tensor(scale[oi], requires_grad=True)
        clip = options["act_clip"] if np.ndim(options["act_clip"]) == 0 else options["act_clip"][ci]
        out = F.binary_conv2d(xt, wt, scale=st_, **(options | dict(groups=1, act_clip=clip)))
        out.backward(np.ascontiguousarray(upstream[..., oi]))
        results.append((out.data, xt.grad, wt.grad, None if scale is None else st_.grad))
    out, dx, dw, dscale = zip(*results)
    return (np.concatenate(out, axis=-1), np.concatenate(dx, axis=-1), np.concatenate(dw),
            None if scale is None else np.concatenate(dscale))


@settings(max_examples=40, deadline=None)
@given(grouped_conv_case(), st.sampled_from([np.float32, np.float64]), st.booleans(), st.booleans(), st.booleans())
def test_grouped_binary_conv2d_equals_each_group_run_alone(case, dtype, lookup, one_image_blocks, integer_upstream):
    """Values and gradients of a grouped conv equal those of its groups run as separate ungrouped convs,
    on either weight-gradient path (float32: table lookup on packed group columns, or BLAS) and with
    one image per column block: exactly for integer-valued upstream gradients and power-of-two scales
    (every product and sum exact in any order; a general float scale makes dx's sums order-dependent),
    else to rounding."""
    from numbnn.functional import binary as binary_module

    x, w, scale, options = _inputs(case, dtype)
    rng = np.random.default_rng(case["seed"] + 2)
    if integer_upstream and scale is not None:
        scale = (2.0 ** rng.integers(-2, 3, scale.shape)).astype(dtype)
    threshold = 1 if lookup else 10**9
    patches = (mock.patch.object(binary_module, "LOOKUP_MIN_COLUMNS", threshold),
               mock.patch.object(binary_module, "LOOKUP_MIN_COLUMNS_SPATIAL", threshold),
               mock.patch.object(conv_module, "BLOCK_ROWS", 1 if one_image_blocks else 10**9))
    with patches[0], patches[1], patches[2]:
        xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
        st_ = None if scale is None else Tensor(scale, requires_grad=True)
        out = F.binary_conv2d(xt, wt, scale=st_, **options)
        upstream = rng.integers(-3, 4, out.shape) if integer_upstream else rng.standard_normal(out.shape)
        out.backward(upstream.astype(dtype))
        want = _per_group_binary_conv2d(x, w, scale, upstream.astype(dtype), options)
    got = (out.data, xt.grad, wt.grad, None if scale is None else st_.grad)
    for a, b in zip(got, want):
        if b is None:
            continue
        assert a.dtype == dtype
        if integer_upstream or b is want[0]:
            np.testing.assert_array_equal(a, b)
        else:
            tol = 1e-12 if dtype == np.float64 else 1e-5
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, np.abs(b).max()))


def test_binary_conv2d_forward_runs_on_the_packed_kernel(monkeypatch):
    calls = []
    kernel = numbnn.kernels.binary_conv2d

    def spy(xb, wb, *args, **kwargs):
        calls.append((xb.dtype, wb.dtype))
        return kernel(xb, wb, *args, **kwargs)

    monkeypatch.setattr(numbnn.kernels, "binary_conv2d", spy)
    F.binary_conv2d(np.ones((1, 4, 4, 3), np.float32), np.ones((2, 3, 3, 3), np.float32), padding=1)
    assert calls == [(np.uint64, np.uint64)]


def test_binary_conv2d_padding_semantics():
    """All-ones 3x3 kernel over all-(+1) input: a corner output sums 4 real taps and 5 padding taps."""
    x = np.ones((1, 3, 3, 2))
    w = np.ones((1, 3, 3, 2))
    for pad_value, corner in ((0, 8), (1, 18), (-1, -2)):
        out = F.binary_conv2d(x, w, padding=1, pad_value=pad_value).data
        assert out[0, 0, 0, 0] == corner and out[0, 1, 1, 0] == 18


def test_binary_conv2d_padding_taps_send_no_gradient_to_x():
    x = Tensor(0.1 * np.ones((1, 1, 1, 1)), requires_grad=True)
    w = Tensor(0.1 * np.ones((1, 3, 3, 1)), requires_grad=True)
    F.binary_conv2d(x, w, padding=1, pad_value=-1).backward(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(x.grad, [[[[1.0]]]])  # only the centre tap reads x
    expected_w = -np.ones((1, 3, 3, 1))
    expected_w[0, 1, 1, 0] = 1.0  # the centre tap saw sign(x) = +1, the border taps the pad value -1
    np.testing.assert_array_equal(w.grad, expected_w)


def test_binary_conv2d_argument_errors():
    x, w = np.ones((1, 4, 4, 2)), np.ones((1, 3, 3, 2))
    with pytest.raises(InputError, match="pad_value"):
        F.binary_conv2d(x, w, pad_value=0.5)
    with pytest.raises(InputError, match="act_quantizer"):
        F.binary_conv2d(x, w, act_quantizer="swish")
    with pytest.raises(InputError, match="1-bit sign"):  # the packed forward computes signs only
        F.binary_conv2d(x, w, act_quantizer=None)
    with pytest.raises(InputError, match="1-bit sign"):
        F.binary_linear(np.ones((1, 2)), np.ones((1, 2)), act_quantizer=F.Quantizer("round", np.rint, None, 1))
    with pytest.raises(InputError, match="scale"):
        F.binary_conv2d(x, w, scale=np.ones(3))
    with pytest.raises(InputError, match="channels"):
        F.binary_conv2d(x, np.ones((1, 3, 3, 3)))


# ---- binary linear -----------------------------------------------------------------------------


@settings(max_examples=20)
@given(
    st.integers(1, 5), st.sampled_from([1, 5, 63, 64, 65, 130]), st.integers(1, 4),
    st.sampled_from(["ste", "approx"]), st.booleans(), st.integers(0, 2**16),
)
def test_binary_linear_matches_reference(n, k, out_features, act_quantizer, with_scale, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, k))
    w = 0.7 * rng.standard_normal((out_features, k))
    scale = np.abs(rng.standard_normal(out_features)) if with_scale else None
    xs = [Tensor(x, requires_grad=True) for _ in range(2)]
    ws = [Tensor(w, requires_grad=True) for _ in range(2)]
    ss = [Tensor(scale, requires_grad=True) if with_scale else None for _ in range(2)]
    out = F.binary_linear(xs[0], ws[0], act_quantizer=act_quantizer, act_clip=0.8, weight_clip=0.5, scale=ss[0])
    sx = F.sign(xs[1], clip=0.8) if act_quantizer == "ste" else F.approx_sign(xs[1])
    ref = sx @ F.sign(ws[1], clip=0.5).T
    ref = ref * ss[1] if with_scale else ref
    np.testing.assert_array_equal(out.data, ref.data)
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    ref.backward(upstream)
    np.testing.assert_allclose(xs[0].grad, xs[1].grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ws[0].grad, ws[1].grad, rtol=1e-12, atol=1e-12)
    if with_scale:
        np.testing.assert_allclose(ss[0].grad, ss[1].grad, rtol=1e-12, atol=1e-12)


def test_binary_ops_take_the_quantizers_own_backward():
    """A user-defined 1-bit sign quantizer: the packed ops apply its straight-through rule to dx."""
    unclipped = F.Quantizer("sign_unclipped", F.QUANTIZERS["ste_sign"].forward, lambda grad, x, clip, out=None: grad, 1)
    rng = np.random.default_rng(3)
    x = Tensor(3 * rng.standard_normal((2, 4, 4, 3)), requires_grad=True)  # many |x| > 1: a clipped STE would zero them
    w = Tensor(rng.standard_normal((2, 3, 3, 3)), requires_grad=True)
    upstream = rng.standard_normal((2, 4, 4, 2))
    F.binary_conv2d(x, w, padding=1, act_quantizer=unclipped).backward(upstream)
    xr = Tensor(x.data, requires_grad=True)
    F.conv2d(xr, Tensor(np.sign(w.data)), padding=1).backward(upstream)  # d/dx of conv(x, sign w): no mask
    np.testing.assert_allclose(x.grad, xr.grad, rtol=1e-12, atol=1e-12)
    xl = Tensor(3 * rng.standard_normal((5, 7)), requires_grad=True)
    wl = rng.standard_normal((2, 7))
    F.binary_linear(xl, wl, act_quantizer=unclipped).backward(np.ones((5, 2)))
    np.testing.assert_allclose(xl.grad, np.tile(np.sign(wl).sum(axis=0), (5, 1)), rtol=1e-12)


def test_binary_linear_float32_and_kernel(monkeypatch):
    calls = []
    kernel = numbnn.kernels.binary_matmul
    monkeypatch.setattr(numbnn.kernels, "binary_matmul", lambda a, b, k: calls.append(k) or kernel(a, b, k))
    x = Tensor(np.random.default_rng(0).standard_normal((3, 70)).astype(np.float32), requires_grad=True)
    w = Tensor(np.random.default_rng(1).standard_normal((4, 70)).astype(np.float32), requires_grad=True)
    y = F.binary_linear(x, w)
    assert y.dtype == np.float32 and calls == [70]
    y.sum().backward()
    assert x.grad.dtype == w.grad.dtype == np.float32


@pytest.mark.parametrize("channels, shift", [(3, None), (32, 0.25)])  # the BLAS path, and the lookups under a threshold
def test_an_empty_batch_gives_an_empty_output_and_zero_gradients(channels, shift):
    x = Tensor(np.zeros((0, 5, 5, channels), np.float32), requires_grad=True)
    w = Tensor(np.random.default_rng(0).standard_normal((32, 3, 3, channels)).astype(np.float32), requires_grad=True)
    b = None if shift is None else Tensor(np.full(channels, shift, np.float32), requires_grad=True)
    y = F.binary_conv2d(x, w, padding=1, shift=b)
    assert y.shape == (0, 5, 5, 32)
    y.sum().backward()
    assert x.grad.shape == x.shape and w.grad.shape == w.shape and not w.grad.any()
    if b is not None:
        assert b.grad.shape == (channels,) and not b.grad.any()
