"""Each layer's forward against a plain-numpy computation; BatchNorm modes; STE masks in binary layers."""

import numpy as np
import pytest

import numbnn.functional as F
import numbnn.nn as nn
from numbnn.autograd import Tensor
from numbnn.errors import InputError


def rng(seed=0):
    return np.random.default_rng(seed)


def signs(a):
    return np.where(a < 0, -1.0, 1.0)


def naive_conv(x, w, stride=1, padding=0, dilation=1, groups=1, pad_value=0.0):
    """Direct NHWC x OHWI convolution: every output pixel is a sum over its (dilated) window."""
    n, h, wd, c = x.shape
    o, kh, kw, cg = w.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)), constant_values=pad_value)
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    og = o // groups
    out = np.zeros((n, ho, wo, o))
    for i in range(ho):
        for j in range(wo):
            rows = i * stride + dilation * np.arange(kh)
            cols = j * stride + dilation * np.arange(kw)
            window = xp[:, rows][:, :, cols]  # [n, kh, kw, c]
            for g in range(groups):
                out[:, i, j, g * og:(g + 1) * og] = np.einsum(
                    "nabc,oabc->no", window[..., g * cg:(g + 1) * cg], w[g * og:(g + 1) * og])
    return out


def x_nhwc(shape=(2, 7, 6, 4), seed=1, dtype=np.float32):
    return rng(seed).normal(size=shape).astype(dtype)


# -- float layers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("stride, padding, dilation, groups", [(1, 0, 1, 1), (2, 1, 1, 2), (1, 2, 2, 1), (2, 1, 1, 4)])
def test_conv2d_matches_naive(stride, padding, dilation, groups):
    conv = nn.Conv2d(4, 8, 3, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=True, rng=rng())
    conv.bias.data[...] = rng(2).normal(size=8)
    x = x_nhwc()
    y = conv(Tensor(x))
    expected = naive_conv(x, conv.weight.data, stride, padding, dilation, groups) + conv.bias.data
    np.testing.assert_allclose(y.data, expected, rtol=1e-4, atol=1e-5)
    assert (conv.weight_bits, conv.act_bits) == (32, 32)


def test_linear_matches_numpy():
    lin = nn.Linear(5, 3, rng=rng())
    x = rng(1).normal(size=(4, 5)).astype(np.float32)
    np.testing.assert_allclose(lin(Tensor(x)).data, x @ lin.weight.data.T + lin.bias.data, rtol=1e-5, atol=1e-6)
    assert nn.Linear(5, 3, bias=False).bias is None


@pytest.mark.parametrize("shape", [(8, 5, 5, 3), (16, 3)])
def test_batchnorm_train_uses_batch_stats_and_updates_running_stats(shape):
    bn = nn.BatchNorm(3, momentum=0.2)
    bn.gamma.data[...] = [1.0, 2.0, 0.5]
    bn.beta.data[...] = [0.0, -1.0, 3.0]
    x = (x_nhwc(shape) * 3 + 2).astype(np.float32)
    axes = tuple(range(x.ndim - 1))
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    y = bn(Tensor(x))
    expected = (x - mean) / np.sqrt(var + 1e-5) * bn.gamma.data + bn.beta.data
    np.testing.assert_allclose(y.data, expected, rtol=1e-4, atol=1e-4)
    count = x.size // 3
    np.testing.assert_allclose(bn.running_mean, 0.2 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.8 + 0.2 * var * count / (count - 1), rtol=1e-5)


def test_batchnorm_eval_uses_running_stats_and_leaves_them_alone():
    bn = nn.BatchNorm(3).eval()
    bn.running_mean[...] = [1.0, -1.0, 0.5]
    bn.running_var[...] = [4.0, 0.25, 1.0]
    bn.gamma.data[...] = 2.0
    x = x_nhwc((4, 3, 3, 3))
    y = bn(Tensor(x))
    expected = (x - bn.running_mean) / np.sqrt(bn.running_var + 1e-5) * 2.0
    np.testing.assert_allclose(y.data, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(bn.running_mean, [1.0, -1.0, 0.5])
    bn.train()
    bn(Tensor(x))
    assert not np.array_equal(bn.running_mean, [1.0, -1.0, 0.5])


def test_per_channel_activations_match_numpy():
    x = x_nhwc((2, 3, 3, 4)) * 2
    a, b, c, d = (rng(s).normal(size=4).astype(np.float32) for s in (10, 11, 12, 13))

    prelu = nn.PReLU(4)
    np.testing.assert_allclose(prelu(Tensor(x)).data, np.where(x >= 0, x, 0.25 * x), rtol=1e-6)

    rsign = nn.RSign(4)
    rsign.bias.data[...] = a
    np.testing.assert_array_equal(rsign(Tensor(x)).data, signs(x + a))

    rprelu = nn.RPReLU(4)
    rprelu.gamma.data[...], rprelu.slope.data[...], rprelu.zeta.data[...] = a, b, c
    u = x - a
    np.testing.assert_allclose(rprelu(Tensor(x)).data, np.where(u >= 0, u, b * u) + c, rtol=1e-5, atol=1e-6)

    dprelu = nn.DPReLU(4)
    dprelu.pos_slope.data[...], dprelu.neg_slope.data[...] = a, b
    dprelu.shift_x.data[...], dprelu.shift_y.data[...] = c, d
    u = x - c
    np.testing.assert_allclose(dprelu(Tensor(x)).data, np.where(u >= 0, a * u, b * u) - d, rtol=1e-5, atol=1e-6)

    fprelu = nn.FPReLU(4)
    fprelu.pos_slope.data[...], fprelu.neg_slope.data[...] = a, b
    np.testing.assert_allclose(fprelu(Tensor(x)).data, np.where(x >= 0, a * x, b * x), rtol=1e-6)

    np.testing.assert_array_equal(nn.ReLU()(Tensor(x)).data, np.maximum(x, 0))
    np.testing.assert_allclose(nn.HardSigmoid()(Tensor(x)).data, np.clip(x + 3, 0, 6) / 6, rtol=1e-6)


def test_rprelu_gradients_reach_all_three_parameters():
    rprelu = nn.RPReLU(3)
    x = Tensor(x_nhwc((2, 2, 2, 3)), requires_grad=True)
    rprelu(x).sum().backward()
    u = x.data  # gamma = 0
    np.testing.assert_allclose(rprelu.zeta.grad, np.full(3, 8.0))
    np.testing.assert_allclose(rprelu.slope.grad, np.where(u < 0, u, 0).sum(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(rprelu.gamma.grad, -np.where(u < 0, 0.25, 1.0).sum(axis=(0, 1, 2)), rtol=1e-5)


@pytest.mark.parametrize("make", [lambda c: nn.PReLU(c), lambda c: nn.RPReLU(c), lambda c: nn.DPReLU(c),
                                  lambda c: nn.FPReLU(c)], ids=["prelu", "rprelu", "dprelu", "fprelu"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("add_after", [False, True])
def test_norm_add_activation_is_the_chain_of_the_modules(make, training, add_after):
    """nn.norm_add_activation(norm, x, r, act) == act(norm(x) + r) and nn.norm_activation_add(norm, x, act, r)
    == act(norm(x)) + r to the last bit: output, running statistics, every gradient; the modules' parameters
    are the ones used."""
    models = []
    for _ in range(2):
        norm, act = nn.BatchNorm(5), make(5)
        for seed, p in enumerate([norm.gamma, norm.beta, *act.parameters()]):
            p.data[...] = rng(seed).uniform(-0.5, 1.5, p.shape).astype(np.float32)  # the same in both copies
        norm.running_mean[...], norm.running_var[...] = 0.3, 1.7
        norm.training = training
        models.append((norm, act))
    x, r = rng(1).standard_normal((3, 4, 4, 5)).astype(np.float32), rng(2).standard_normal((3, 4, 4, 5)).astype(np.float32)
    upstream = rng(3).standard_normal((3, 4, 4, 5)).astype(np.float32)
    results = []
    for (norm, act), fused in zip(models, (True, False)):
        xt, rt = Tensor(x, requires_grad=True), Tensor(r, requires_grad=True)
        if add_after:
            y = nn.norm_activation_add(norm, xt, act, rt) if fused else act(norm(xt)) + rt
        else:
            y = nn.norm_add_activation(norm, xt, rt, act) if fused else act(norm(xt) + rt)
        y.backward(upstream)
        results.append([y.data, norm.running_mean, norm.running_var, xt.grad, rt.grad, norm.gamma.grad, norm.beta.grad,
                        *[p.grad for p in act.parameters()]])
    for got, expected in zip(*results):
        np.testing.assert_array_equal(got, expected)


def test_norm_add_activation_needs_parts_that_agree():
    norms = [nn.BatchNorm(3), nn.BatchNorm(3, eps=1e-3)]
    x = Tensor(rng().standard_normal((4, 3)).astype(np.float32))
    with pytest.raises(InputError, match="differ"):
        nn.norm_add_activation(norms, [x, x], x, nn.RPReLU(6))


def test_pooling_layers_match_numpy():
    x = x_nhwc((2, 6, 4, 3))
    windows = x.reshape(2, 3, 2, 2, 2, 3)
    np.testing.assert_allclose(nn.AvgPool2d(2)(Tensor(x)).data, windows.mean(axis=(2, 4)), rtol=1e-6)
    np.testing.assert_array_equal(nn.MaxPool2d(2)(Tensor(x)).data, windows.max(axis=(2, 4)))
    np.testing.assert_allclose(nn.GlobalAvgPool()(Tensor(x)).data, x.mean(axis=(1, 2)), rtol=1e-6)
    assert nn.AvgPool2d(3, stride=1, padding=1)(Tensor(x)).shape == x.shape


def test_rearranging_layers_match_numpy():
    x = x_nhwc((2, 4, 6, 3))
    s2d = nn.SpaceToDepth(2)(Tensor(x)).data
    assert s2d.shape == (2, 2, 3, 12)
    for dy in range(2):
        for dx in range(2):
            np.testing.assert_array_equal(s2d[..., (dy * 2 + dx) * 3:(dy * 2 + dx + 1) * 3], x[:, dy::2, dx::2, :])
    np.testing.assert_array_equal(nn.DepthToSpace(2)(Tensor(s2d)).data, x)

    y = x_nhwc((2, 2, 2, 6))
    shuffled = nn.ChannelShuffle(2)(Tensor(y)).data
    np.testing.assert_array_equal(shuffled, y[..., [0, 3, 1, 4, 2, 5]])
    np.testing.assert_array_equal(nn.Flatten()(Tensor(x)).data, x.reshape(2, -1))


def test_fake_quant_snaps_to_the_grid():
    x = np.linspace(-2, 2, 41, dtype=np.float32)
    y = nn.FakeQuant(4, 1.0)(Tensor(x)).data
    step = 1.0 / 7
    np.testing.assert_allclose(y, np.round(np.clip(x, -1, 1) / step) * step, atol=1e-6)
    u = nn.FakeQuant(4, 1.5, signed=False)(Tensor(x)).data
    assert u.min() == 0.0 and len(np.unique(u)) <= 16


def test_layers_take_quantizers_by_object_or_name():
    for given in ("approx", "approx_sign", F.QUANTIZERS["approx_sign"]):
        assert nn.BinaryConv2d(2, 2, 1, act_quantizer=given).quantizer is F.QUANTIZERS["approx_sign"]
    assert nn.BinaryLinear(2, 2, act_quantizer="ste").quantizer is F.QUANTIZERS["ste_sign"]
    assert nn.RSign(2, quantizer="ste").quantizer is F.QUANTIZERS["ste_sign"]


@pytest.mark.parametrize("quantizer, clip", [("approx", 1.0), ("ste", 0.6)])
def test_binary_conv_of_an_rsign_input_is_the_rsign_then_the_conv(quantizer, clip):
    """conv(rsign.before_sign(x)): conv(RSign(x)) on packed bits, with the RSign's quantizer and clip
    applied once at x + b: the gradients of the float definition sign_STE(x + b) -> conv(., sign W)."""
    x = 0.8 * x_nhwc((2, 5, 5, 4), seed=4)
    rsign = nn.RSign(4, quantizer=quantizer, clip=clip)
    rsign.bias.data[...] = rng(9).normal(size=4).astype(np.float32) * 0.3
    layer = nn.BinaryConv2d(4, 6, 3, padding=1, rng=rng(), act_quantizer=None)  # its own quantizer is not used
    xt = Tensor(x, requires_grad=True)
    y = layer(rsign.before_sign(xt))
    expected = reference_conv(layer, signs(x + rsign.bias.data))
    np.testing.assert_allclose(y.data, expected, rtol=1e-5, atol=1e-5)
    upstream = rng(2).normal(size=y.shape).astype(np.float32)
    y.backward(upstream)

    xr, br = Tensor(x, requires_grad=True), Tensor(rsign.bias.data.copy(), requires_grad=True)
    sx = F.get_quantizer(quantizer)(xr + br, clip)
    alpha = np.abs(layer.weight.data).mean(axis=(1, 2, 3))
    (F.conv2d(sx, F.sign(Tensor(layer.weight.data)), padding=1) * alpha).backward(upstream)
    np.testing.assert_allclose(xt.grad, xr.grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rsign.bias.grad, br.grad, rtol=1e-5, atol=1e-5)
    assert np.any(rsign.bias.grad != 0)


@pytest.mark.parametrize("binarize_weights", [True, False])
def test_binary_conv_of_a_shuffled_input_is_the_shuffle_then_the_conv(binarize_weights):
    """conv(shuffle.before_conv(x)) against conv(shuffle(x)), grouped as FTBNN's units: the same output and
    gradients to the last bit, on the packed path (the conv shuffles) and on step 1's real weights (the
    layer shuffles first)."""
    x = 0.8 * x_nhwc((2, 5, 5, 8), seed=6)
    shuffle = nn.ChannelShuffle(4)
    layer = nn.BinaryConv2d(8, 8, 3, padding=1, groups=4, rng=rng(), scale=None, binarize_weights=binarize_weights)
    upstream = rng(3).normal(size=(2, 5, 5, 8)).astype(np.float32)
    results = []
    for fused in (True, False):
        layer.zero_grad()
        xt = Tensor(x, requires_grad=True)
        y = layer(shuffle.before_conv(xt) if fused else shuffle(xt))
        y.backward(upstream)
        results.append([y.data, xt.grad, layer.weight.grad])
    for got, want in zip(*results):
        np.testing.assert_array_equal(got, want)
    assert isinstance(shuffle.before_conv(x), nn.ShuffledInput)


# -- binary layers ------------------------------------------------------------------------------------

def binary_conv(mode, **kwargs):
    """mode: "packed" (binary weights and activations), "real_weights" (ReActNet step 1), "real_acts"."""
    options = {"packed": {}, "real_weights": {"binarize_weights": False}, "real_acts": {"act_quantizer": None}}
    return nn.BinaryConv2d(4, 6, 3, rng=rng(), **options[mode], **kwargs)


def reference_conv(layer, x):
    """What the layer should compute, from plain numpy: alpha * conv(q(x), q(W)) with the layer's padding."""
    xq = x if layer.quantizer.bits == 32 else signs(x)
    w = layer.weight.data
    wq = signs(w) if layer.binarize_weights else w
    out = naive_conv(xq, wq, layer.stride[0], layer.padding[0], layer.dilation[0], layer.groups, layer.pad_value)
    if layer.binarize_weights and layer.scale == "mean_abs":
        out = out * np.abs(w).mean(axis=(1, 2, 3))
    return out


@pytest.mark.parametrize("mode", ["packed", "real_weights", "real_acts"])
@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(stride=2, padding=1), dict(padding=1, pad_value=1, groups=2),
     dict(padding=2, dilation=2, pad_value=-1), dict(padding=1, scale=None)],
)
def test_binary_conv2d_forward_matches_numpy(mode, kwargs):
    layer = binary_conv(mode, **kwargs)
    x = x_nhwc()
    y = layer(Tensor(x))
    np.testing.assert_allclose(y.data, reference_conv(layer, x), rtol=1e-5, atol=1e-5)


def test_binary_conv2d_cost_attributes():
    assert (binary_conv("packed").weight_bits, binary_conv("packed").act_bits) == (1, 1)
    assert (binary_conv("real_weights").weight_bits, binary_conv("real_weights").act_bits) == (32, 1)
    assert (binary_conv("real_acts").weight_bits, binary_conv("real_acts").act_bits) == (1, 32)


@pytest.mark.parametrize(
    "binarize_weights, act_quantizer",
    [(True, "ste"), (True, "approx"), (False, "ste"), (False, "approx"), (True, None)],
)
def test_binary_conv2d_gradients_apply_the_ste_masks(binarize_weights, act_quantizer):
    """Gradients equal those of alpha * conv(q(x), q(W)) with q's surrogate derivative and a constant alpha."""
    layer = nn.BinaryConv2d(4, 6, 3, padding=1, act_clip=0.8, weight_clip=0.2, act_quantizer=act_quantizer,
                            binarize_weights=binarize_weights, latent_init=1.0, rng=rng())
    x = x_nhwc()
    upstream = rng(5).normal(size=(2, 7, 6, 6)).astype(np.float32)
    xt = Tensor(x, requires_grad=True)
    layer(xt).backward(upstream)

    # Reference: the same convolution on the already-quantized operands, as plain float autograd leaves.
    w = layer.weight.data
    binary_w, binary_x = layer.binarize_weights, layer.quantizer.bits == 1
    xq = Tensor(signs(x).astype(np.float32) if binary_x else x, requires_grad=True)
    wq = Tensor(signs(w).astype(np.float32) if binary_w else w, requires_grad=True)
    ref = F.conv2d(xq, wq, None, 1, 1)
    if binary_w:
        ref = ref * np.abs(w).mean(axis=(1, 2, 3))
    ref.backward(upstream)

    if binary_w:
        weight_mask = np.abs(w) <= 0.2
        assert 0 < weight_mask.mean() < 1  # the clip bites somewhere, so the test can tell
    else:
        weight_mask = np.ones_like(w)
    if not binary_x:
        act_derivative = np.ones_like(x)
    elif act_quantizer == "ste":
        act_derivative = (np.abs(x) <= 0.8).astype(np.float32)
    else:
        act_derivative = np.maximum(0, 2 - 2 * np.abs(x))
    assert layer.weight.grad.shape == w.shape and xt.grad.shape == x.shape
    np.testing.assert_allclose(layer.weight.grad, wq.grad * weight_mask, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(xt.grad, xq.grad * act_derivative, rtol=1e-4, atol=1e-4)
    assert np.all(layer.weight.grad[~weight_mask.astype(bool)] == 0)


@pytest.mark.parametrize("binarize_weights, act_quantizer", [(True, "approx"), (False, "ste"), (True, None)])
def test_binary_linear_forward_and_masked_gradients(binarize_weights, act_quantizer):
    layer = nn.BinaryLinear(6, 4, bias=True, act_quantizer=act_quantizer, binarize_weights=binarize_weights,
                            weight_clip=0.3, latent_init=1.0, rng=rng())
    layer.bias.data[...] = [1.0, 2.0, 3.0, 4.0]
    x = rng(1).normal(size=(5, 6)).astype(np.float32)
    w = layer.weight.data
    xq = signs(x) if act_quantizer else x
    wq = signs(w) if binarize_weights else w
    alpha = np.abs(w).mean(axis=1) if binarize_weights else 1.0
    xt = Tensor(x, requires_grad=True)
    y = layer(xt)
    np.testing.assert_allclose(y.data, xq @ wq.T * alpha + layer.bias.data, rtol=1e-5, atol=1e-5)
    upstream = rng(2).normal(size=(5, 4)).astype(np.float32)
    y.backward(upstream)
    weight_mask = (np.abs(w) <= 0.3) if binarize_weights else 1.0
    act = {"approx": np.maximum(0, 2 - 2 * np.abs(x)), "ste": (np.abs(x) <= 1.0), None: 1.0}[act_quantizer]
    np.testing.assert_allclose(layer.weight.grad, (upstream * alpha).T @ xq * weight_mask, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xt.grad, (upstream * alpha) @ wq * act, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.bias.grad, upstream.sum(axis=0), rtol=1e-5)
    assert layer.weight_bits == (1 if binarize_weights else 32) and layer.act_bits == (1 if act_quantizer else 32)


@pytest.mark.parametrize("make", [
    lambda **kw: nn.BinaryConv2d(8, 16, 3, **kw),
    lambda **kw: nn.BinaryLinear(8, 16, **kw),
])
def test_binary_layers_start_from_small_latent_weights(make):
    default = make(rng=rng(3)).weight.data
    kaiming = make(latent_init=1.0, rng=rng(3)).weight.data
    np.testing.assert_allclose(default, kaiming * nn.init.BINARY_LATENT_INIT, rtol=1e-6)
    np.testing.assert_array_equal(np.signbit(default), np.signbit(kaiming))  # same signs: same binary network
    for bad in (0, -0.1, 1.5, True, "0.1"):
        with pytest.raises(InputError, match="latent_init"):
            make(latent_init=bad)


@pytest.mark.parametrize("binarize_weights", [True, False])
def test_binary_conv2d_refuses_a_pad_value_other_than_0_or_plus_minus_1(binarize_weights):
    # the layer checks at construction: with real weights its forward pads through F.pad, which takes any value
    with pytest.raises(InputError, match="pad_value"):
        nn.BinaryConv2d(4, 4, 3, padding=1, pad_value=0.5, binarize_weights=binarize_weights)
