"""PokeBNN: shapes, PokeConv pieces (shortcuts, zero-init BN, SE gate, clip bound B), quantized stem/head, training."""

import numpy as np
import pytest

import numbnn.functional as F
from numbnn.autograd import Tensor
from numbnn.errors import InputError
from numbnn.models import build_model
from numbnn.autograd import no_grad
from numbnn.inference import compile
from numbnn.models.pokebnn import Bottleneck, ChannelBound, PokeConv, RunningBoundQuant, SqueezeExcite, reshape_shortcut
from numbnn.nn import BinaryConv2d, SignInput, init
from numbnn.optim import Adam
from numbnn.train.data import load_split, normalize

SMALL = {"widths": (8, 16, 32), "blocks": (1, 1, 1), "stem_widths": (8, 16)}


def images(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 28, 28, 1)).astype(np.float32)


def test_default_builds_and_gives_logits():
    model = build_model("pokebnn")
    assert model.clip == 3.0
    model.eval()
    logits = model(Tensor(images(2)))
    assert logits.shape == (2, 10)
    assert np.all(np.isfinite(logits.data))


def test_bottleneck_layout_and_zero_initialised_third_bn():
    model = build_model("pokebnn")
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 3
    for block, width in zip(blocks, (32, 64, 128)):
        assert [c.conv.kernel_size for c in (block.reduce, block.spatial, block.expand)] == [(1, 1), (3, 3), (1, 1)]
        assert block.expand.conv.out_channels == 4 * width
        np.testing.assert_array_equal(block.expand.norm.gamma.data, 0.0)
        np.testing.assert_array_equal(block.reduce.norm.gamma.data, 1.0)
        np.testing.assert_array_equal(block.spatial.norm.gamma.data, 1.0)
    assert [b.spatial.conv.stride for b in blocks] == [(1, 1), (2, 2), (2, 2)]


def test_zero_gamma_makes_the_third_conv_start_as_its_shortcuts():
    """With gamma = 0 the third PokeConv's binary branch is silent: the output only depends on the shortcuts."""
    init.seed(2)
    conv = PokeConv(8, 32, 1, 1, clip=3.0, bottleneck_input=(16, 1))
    x = Tensor(np.random.default_rng(0).normal(size=(4, 5, 5, 8)).astype(np.float32))
    r1 = Tensor(np.random.default_rng(1).normal(size=(4, 5, 5, 16)).astype(np.float32))
    out = conv(x, r1).data
    conv.conv.weight.data *= -1  # a different binary conv changes nothing while gamma is 0
    np.testing.assert_allclose(conv(x, r1).data, out, rtol=1e-5, atol=1e-5)


def test_pokeconv_applies_its_pieces_in_the_papers_order():
    """out = BN(DPReLU(BN(conv(x)) + local(x) + tiled(r1)) * SE(x)), with a stride-2 3x3 conv."""
    init.seed(4)
    conv = PokeConv(8, 16, 3, 2, clip=3.0, bottleneck_input=(4, 2))
    conv.norm.gamma.data[:] = 0.5  # let the binary branch contribute
    rng = np.random.default_rng(5)
    x = Tensor(rng.normal(size=(4, 6, 6, 8)).astype(np.float32))
    r1 = Tensor(rng.normal(size=(4, 6, 6, 4)).astype(np.float32))
    conv(x, r1)  # one training-mode call sets the quantizers' running bounds and BN statistics
    conv.eval()
    y = conv.norm(conv.conv(x)) + reshape_shortcut(x, 16, 2, "zeros") + reshape_shortcut(r1, 16, 2, "tile")
    expected = conv.out_norm(conv.activation(y) * conv.excite(x).reshape(4, 1, 1, 16))
    np.testing.assert_allclose(conv(x, r1).data, expected.data, rtol=1e-6, atol=1e-6)
    assert conv(x, r1).shape == (4, 3, 3, 16)


def test_reshape_shortcut_pads_tiles_averages_and_pools():
    r = np.arange(2 * 4 * 4 * 4, dtype=np.float32).reshape(2, 4, 4, 4)
    padded = reshape_shortcut(Tensor(r), 8, 1, "zeros").data
    np.testing.assert_array_equal(padded[..., :4], r)
    np.testing.assert_array_equal(padded[..., 4:], 0)
    np.testing.assert_array_equal(reshape_shortcut(Tensor(r), 12, 1, "tile").data, np.concatenate([r] * 3, axis=-1))
    np.testing.assert_allclose(reshape_shortcut(Tensor(r), 2, 1, "zeros").data,
                               r.reshape(2, 4, 4, 2, 2).mean(axis=-1))  # consecutive channel pairs averaged
    pooled = reshape_shortcut(Tensor(r), 4, 2, "zeros").data
    assert pooled.shape == (2, 2, 2, 4)
    # SAME 3x3 stride 2 on 4x4 pads one row/column at the end: windows cover rows/cols 0-2 and 2-3
    np.testing.assert_allclose(pooled[:, 0, 0], r[:, :3, :3].mean(axis=(1, 2)))
    np.testing.assert_allclose(pooled[:, 1, 1], r[:, 2:, 2:].mean(axis=(1, 2)))
    with pytest.raises(InputError, match="shortcut"):
        PokeConv(12, 8, 1, 1, clip=3.0)


def test_se_gate_lies_in_zero_one():
    init.seed(3)
    se = SqueezeExcite(16, 32)
    r = Tensor(50 * np.random.default_rng(4).normal(size=(6, 5, 5, 16)).astype(np.float32))
    gate = se(r).data
    assert gate.shape == (6, 32)
    assert gate.min() >= 0.0 and gate.max() <= 1.0
    se.excite.bias.data[:] = np.repeat([10.0, -10.0], 16)  # far outside [-3, 3]: the hard sigmoid saturates
    gate = se(r).data
    np.testing.assert_array_equal(gate[:, :16], 1.0)
    np.testing.assert_array_equal(gate[:, 16:], 0.0)
    assert se.squeeze.input_quant.bits == 4 and se.excite.input_quant.bits == 4 and not se.excite.input_quant.signed


def test_clip_bound_sets_the_ste_window_but_not_the_forward():
    x = np.linspace(-4, 4, 2 * 3 * 3 * 16, dtype=np.float32).reshape(2, 3, 3, 16)
    outputs, grads = [], []
    for clip in (1.0, 2.5):
        init.seed(7)
        model = build_model("pokebnn", **SMALL, clip=clip)
        conv = model.blocks[0].reduce.conv
        assert isinstance(conv, BinaryConv2d) and conv.act_clip == clip and conv.scale is None
        xt = Tensor(x, requires_grad=True)
        y = conv(xt)
        (y * y).sum().backward()
        outputs.append(y.data)
        grads.append(xt.grad)
    np.testing.assert_array_equal(outputs[0], outputs[1])  # +-1 values: the forward is the integer popcount
    np.testing.assert_array_equal(outputs[0], np.round(outputs[0]))
    magnitude = np.abs(x)
    assert np.all(grads[0][magnitude > 1.0] == 0) and np.all(grads[1][magnitude > 2.5] == 0)
    between = (magnitude > 1.0) & (magnitude <= 2.5)
    assert np.any(grads[1][between] != 0)
    with pytest.raises(InputError, match="clip"):
        build_model("pokebnn", clip=0)


def test_per_channel_bounds_set_each_channels_ste_window_but_not_the_forward():
    """clip_per_channel: B_c = B * rms_c of the conv input; a small channel passes gradient only inside its
    own narrow window, a wide one inside its wide window; the conv's output is the same signs' popcount."""
    init.seed(8)
    conv = PokeConv(4, 8, 3, 1, clip=3.0, clip_per_channel=True)
    assert conv.bound is not None and PokeConv(4, 8, 3, 1, clip=3.0).bound is None
    rng = np.random.default_rng(9)
    scales = np.array([0.1, 1.0, 3.0, 10.0], np.float32)
    x = (rng.standard_normal((8, 5, 5, 4)) * scales).astype(np.float32)
    bounds = conv.bound(Tensor(x))  # the first training batch sets the running mean square outright
    np.testing.assert_allclose(bounds, 3.0 * np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=(0, 1, 2))), rtol=1e-6)
    conv.bound(Tensor(2 * x))  # then an exponential moving average, momentum 0.1
    np.testing.assert_allclose(conv.bound.running_mean_square, 1.3 * np.mean(x.astype(np.float64) ** 2, axis=(0, 1, 2)),
                               rtol=1e-5)
    conv.eval()  # the stored bounds, on a batch where every channel has unit scale
    bounds = conv.bound(Tensor(x))
    assert bounds[0] < 0.5 and bounds[3] > 20
    z = rng.standard_normal(x.shape).astype(np.float32)
    zt = Tensor(z, requires_grad=True)
    y = conv.conv(SignInput(zt, conv.conv.quantizer, bounds))
    (y * Tensor(rng.standard_normal(y.shape).astype(np.float32))).sum().backward()
    np.testing.assert_array_equal(y.data, conv.conv(Tensor(z)).data)  # the forward is the signs' popcount
    inside = np.abs(z) <= bounds
    assert np.all(zt.grad[~inside] == 0) and np.count_nonzero(zt.grad[inside]) > 0.9 * inside.sum()
    assert 0.4 < 1 - inside[..., 0].mean() < 0.9  # the narrow channel: most of its gradient is cut
    assert inside[..., 3].all() and not (np.abs(z[..., 3]) <= 1.0).all()  # the wide one passes all, |z| > 1 too


def test_clip_per_channel_model_trains_and_compiles_bit_for_bit():
    init.seed(10)
    model = build_model("pokebnn", **SMALL, clip_per_channel=True)
    bounds = [m for m in model.modules() if isinstance(m, ChannelBound)]
    assert len(bounds) == 9
    loss = F.cross_entropy(model(Tensor(images(8))), np.arange(8) % 10)
    loss.backward()
    assert np.isfinite(loss.item()) and all(b.running_mean_square.all() for b in bounds)
    model.eval()
    x = images(5, seed=3)
    with no_grad():
        expected = model(Tensor(x)).data
    np.testing.assert_array_equal(compile(model).predict(x), expected)


def test_stem_and_head_are_int8_and_the_stem_never_reuses_a_pixel():
    model = build_model("pokebnn")
    stem = model.stem
    assert stem.patchify.kernel_size == stem.patchify.stride == (2, 2)
    assert stem.grouped.groups == stem.grouped.in_channels == 16 and stem.grouped.out_channels == 32
    for layer in (stem.patchify, stem.grouped, model.classifier):
        assert layer.weight_bits == 8 and layer.act_bits == 8


def test_running_bound_quant_uses_the_batch_bound_in_training_and_the_average_in_eval():
    quant = RunningBoundQuant(4)
    x = np.array([[1.2, -3.0], [0.3, -2.0]], np.float32)  # per-row max |x|: 3 and 2 -> bound 2.5
    y = quant(Tensor(x)).data
    assert quant.running_bound[0] == pytest.approx(2.5)
    step = 2.5 / 7  # 4 bits signed: levels k * bound / 7, |k| <= 7
    np.testing.assert_allclose(y, [[3 * step, -2.5], [step, -6 * step]], rtol=1e-6)
    quant.eval()
    np.testing.assert_allclose(quant(Tensor(4 * x)).data.max(), 2.5, rtol=1e-6)  # clipped to the stored bound


def test_one_training_step_changes_the_parameters_with_a_gradient():
    init.seed(0)
    model = build_model("pokebnn", **SMALL)
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    optimizer = Adam(list(model.parameters()), lr=1e-2)
    loss = F.cross_entropy(model(Tensor(images(8))), np.arange(8) % 10)
    loss.backward()
    optimizer.step()
    assert np.isfinite(loss.item())
    unchanged = sorted(name for name, p in model.named_parameters() if np.array_equal(p.data, before[name]))
    # Only the third convs' binary weights wait (their BN gamma is 0, so their first gradient is 0), and SE
    # weights behind hidden ReLU units that no image of this batch activates; every gate's output bias moves.
    third_conv_weights = [f"blocks.{i}.expand.conv.weight" for i in range(3)]
    assert [name for name in unchanged if ".excite." not in name] == third_conv_weights
    assert not any(name.endswith("excite.excite.bias") for name in unchanged)


def test_adam_steps_reduce_the_loss_on_fashion_mnist():
    init.seed(1)
    raw, labels = load_split("train", 64)
    x = normalize(raw)
    model = build_model("pokebnn", **SMALL)
    optimizer = Adam(list(model.parameters()), lr=3e-3, betas=(0.9, 0.99))
    losses = []
    for _ in range(12):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(Tensor(x)), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
