"""ReActNet-A: shapes, the block diagram (channel duplication, avg-pool shortcut), the fused BN + residual +
RPReLU against the chain of the block's modules, the checkpoint names, the packed forward of step 2, and
the two-step recipe's weight carry-over (every step-1 weight arrives in step 2).

Small widths and a handful of FashionMNIST images keep the file to a few seconds.
"""

import numpy as np
import pytest

import numbnn.functional as F
from numbnn import kernels
from numbnn.autograd import Tensor, no_grad
from numbnn.errors import CheckpointError, InputError
from numbnn.models import build_model
from numbnn.models.cost import summarize
from numbnn.models.reactnet import BasicBlock, block_strides, rsign
from numbnn.nn import BinaryConv2d, RSign, SignInput
from numbnn.train import recipes
from numbnn.train.config import TrainConfig, make_config
from numbnn.train.data import load_split

SMALL = {"widths": (8, 16, 32, 32), "stem_stride": 2}


def _images(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 28, 28, 1)).astype(np.float32)


def _randomize(model, seed=1):
    """Give every parameter and buffer distinct non-initial values (so a missed copy cannot pass)."""
    rng = np.random.default_rng(seed)
    for _, array in model._state_arrays().items():
        array[...] = rng.uniform(0.5, 1.5, array.shape) if array.ndim == 1 else rng.standard_normal(array.shape) * 0.1


@pytest.mark.parametrize("args, hw", [({}, [14, 7, 7, 4, 4]), ({"stem_stride": 1}, [28, 14, 14, 7, 7])])
def test_default_network_shapes(args, hw):
    model = build_model("reactnet-a", **args)
    x = Tensor(_images(2))
    with no_grad():
        assert model(x).shape == (2, 10)
        assert model.features(x).shape == (2, 256)
    shapes = {row.name: row.output_shape for row in summarize(model).layers}
    assert [shapes[f"blocks.{i}.conv_3x3"][1] for i in range(len(model.blocks))] == hw
    assert [(b.in_channels, b.out_channels) for b in model.blocks] == [(32, 64), (64, 128), (128, 128), (128, 256), (256, 256)]
    assert block_strides([32, 64, 128, 128, 256, 256]) == [1, 2, 1, 2, 1]  # the code's rule: not 32 -> 64


def test_small_config_forward_and_every_parameter_gets_a_gradient():
    model = build_model("reactnet-a", **SMALL, num_classes=3)
    out = model(Tensor(_images(4)))
    assert out.shape == (4, 3)
    F.cross_entropy(out, np.array([0, 1, 2, 0])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.any(p.grad != 0), name


def test_plain_ablation_is_sign_and_prelu_with_the_same_initial_function():
    """plain=True drops RSign's thresholds and RPReLU's shifts and nothing else: built from the same seed it
    shares every other initial value, so it computes the default's function until the shifts move."""
    from numbnn.nn import PReLU, RPReLU, RSign, init

    init.seed(3)
    default = build_model("reactnet-a", **SMALL)
    init.seed(3)
    plain = build_model("reactnet-a", **SMALL, plain=True)
    full, reduced = default.state_dict(), plain.state_dict()
    dropped = sorted(set(full) - set(reduced))
    assert set(reduced) <= set(full) and dropped and all(
        name.rsplit(".", 1)[-1] in ("bias", "gamma", "zeta") and (".threshold_" in name or ".act_" in name)
        for name in dropped)
    for name, value in reduced.items():
        np.testing.assert_array_equal(value, full[name], err_msg=name)
    kinds = {type(m) for _, m in plain.named_modules()}
    assert PReLU in kinds and RPReLU not in kinds and RSign not in kinds
    x = Tensor(_images(4))
    default.eval(), plain.eval()
    with no_grad():
        np.testing.assert_array_equal(plain(x).data, default(x).data)
        default.blocks[0].threshold_3x3.bias.data[:] = 0.3  # a moved RSign threshold changes the default only
        assert not np.array_equal(plain(x).data, default(x).data)
    with pytest.raises(InputError, match="plain"):
        build_model("reactnet-a", plain="yes")


@pytest.mark.parametrize("name, args, keys", [
    ("reactnet-a", SMALL, ["blocks.0.threshold_3x3.bias", "blocks.0.threshold_1x1.bias", "blocks.2.threshold_1x1.bias"]),
    ("bnn-small", {"widths": (8, 8, 16)}, ["blocks.0.threshold.bias", "blocks.1.threshold.bias"]),
])
def test_models_threshold_through_nn_rsign_under_their_checkpoint_names(monkeypatch, name, args, keys):
    """The models say RSign (paper Fig. 2): each threshold is an nn.RSign stored under the name checkpoints
    have always used, and every binary conv takes its input from one (a duplication's two 1x1 convs the
    same x + b, computed once)."""
    model = build_model(name, **args)
    rsigns = [m for path, m in model.named_modules() if isinstance(m, RSign)]
    assert set(keys) <= set(model.state_dict())
    assert all(isinstance(dict(model.named_modules())[k.rsplit(".", 1)[0]], RSign) for k in keys)
    inputs = []
    forward = BinaryConv2d.forward
    monkeypatch.setattr(BinaryConv2d, "forward", lambda self, x: inputs.append(x) or forward(self, x))
    with no_grad():
        model(Tensor(_images(2)))
    convs = [m for m in model.modules() if isinstance(m, BinaryConv2d)]
    assert len(inputs) == len(convs) and all(isinstance(x, SignInput) for x in inputs)
    assert len({id(x.value) for x in inputs}) == len(rsigns)


def test_latent_init_scales_only_the_binary_convs_initial_weights():
    from numbnn.nn import init

    init.seed(5)
    small = build_model("reactnet-a", **SMALL, latent_init=0.1)
    init.seed(5)
    kaiming = build_model("reactnet-a", **SMALL, latent_init=1.0)
    binary = {name for name, m in kaiming.named_modules() if isinstance(m, BinaryConv2d)}
    for (name, a), (_, b) in zip(small.named_parameters(), kaiming.named_parameters()):
        scale = 0.1 if name.rsplit(".", 1)[0] in binary else 1.0
        np.testing.assert_allclose(a.data, b.data * np.float32(scale), rtol=1e-6, err_msg=name)
    with pytest.raises(InputError):
        build_model("reactnet-a", latent_init=0.0)


@pytest.mark.parametrize("widths, stride", [((8, 24), 1), ((8, 16), 3)])
def test_bad_geometry_is_an_input_error(widths, stride):
    with pytest.raises(InputError):
        BasicBlock(widths[0], widths[1], stride)


def test_channel_duplication_concatenates_two_separate_1x1_convs():
    block = BasicBlock(8, 16, stride=1)
    _randomize(block)
    block.eval()
    assert len(block.pointwise) == 2 and all(b.conv.weight.shape == (8, 1, 1, 8) for b in block.pointwise)
    x = Tensor(_images(2)[..., :1].repeat(8, axis=-1)[:, :10, :10])
    with no_grad():
        before = block(x).data
        block.pointwise[1].conv.weight.data[...] *= -1  # flip the second conv only
        after = block(x).data
    assert before.shape == (2, 10, 10, 16)
    assert np.array_equal(before[..., :8], after[..., :8])  # first half: the first conv's output
    assert not np.allclose(before[..., 8:], after[..., 8:])  # second half: the second conv's


@pytest.mark.parametrize("out_channels", [8, 16])
def test_strided_shortcut_is_a_2x2_average_pool(out_channels):
    """With both convs' BN zeroed and identity RPReLUs, a block is exactly its shortcuts."""
    block = BasicBlock(8, out_channels, stride=2)
    block.eval()
    for bn in [block.norm_3x3] + [b.norm for b in block.pointwise]:
        bn.gamma.data[...] = 0
    for act in (block.act_3x3, block.act_1x1):
        act.slope.data[...] = 1
    x = _images(2)[:, :7, :7, :1].repeat(8, axis=-1) * np.linspace(0.5, 2, 8, dtype=np.float32)
    with no_grad():
        out = block(Tensor(x)).data
    pooled = np.zeros((2, 4, 4, 8), np.float32)  # 2x2 windows, the last row/column alone ("same" padding)
    for i in range(4):
        for j in range(4):
            pooled[:, i, j] = x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean(axis=(1, 2))
    expected = np.concatenate([pooled] * (out_channels // 8), axis=-1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def unfused_block(block, x):
    """BasicBlock's forward as the chain of its modules, one op each (BN, add, concat, RPReLU)."""
    out1 = block.act_3x3(block.norm_3x3(block.conv_3x3(rsign(block.threshold_3x3, x))) + block.shortcut(x))
    z = rsign(block.threshold_1x1, out1)
    branches = [branch.norm(branch.conv(z)) + out1 for branch in block.pointwise]
    return block.act_1x1(branches[0] if len(branches) == 1 else F.concat(branches, axis=-1))


@pytest.mark.parametrize("out_channels, stride", [(8, 1), (16, 2), (16, 1)])
@pytest.mark.parametrize("plain", [False, True])
def test_fused_block_equals_the_chain_of_its_modules(out_channels, stride, plain):
    """Training step and evaluation: outputs, running statistics and gradients are the unfused chain's bit
    for bit; only the plain ablation's gradient of out1 (read by the 1x1 convs themselves, not through an
    RSign) sums its four parts in another order, so gradients upstream of it agree to float32 rounding."""
    blocks = []
    for _ in range(2):
        block = BasicBlock(8, out_channels, stride, plain=plain)
        _randomize(block)
        blocks.append(block)
    x = _images(4)[:, :9, :9, :1].repeat(8, axis=-1) * np.linspace(0.5, 2, 8, dtype=np.float32)
    upstream = np.random.default_rng(3).standard_normal((4, 9 // stride + 9 % stride, 9 // stride + 9 % stride,
                                                         out_channels)).astype(np.float32)
    results = []
    for block, forward in zip(blocks, (lambda b, t: b(t), unfused_block)):
        inputs = Tensor(x.copy(), requires_grad=True)
        y = forward(block, inputs)
        y.backward(upstream)
        with no_grad():
            block.eval()
            evaluated = forward(block, Tensor(x)).data
        grads = {name: p.grad for name, p in block.named_parameters()}
        results.append((y.data, evaluated, dict(block.named_buffers()), grads, inputs.grad))
    (y, evaluated, buffers, grads, dx), (y_ref, evaluated_ref, buffers_ref, grads_ref, dx_ref) = results
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(evaluated, evaluated_ref)
    for name in buffers_ref:
        np.testing.assert_array_equal(buffers[name], buffers_ref[name], err_msg=name)
    assert grads.keys() == grads_ref.keys()
    def check(got, expected, name):  # float32 rounding of sums of O(max |expected|) terms
        if plain:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max(), err_msg=name)
        else:
            np.testing.assert_array_equal(got, expected, err_msg=name)

    for name in grads_ref:
        check(grads[name], grads_ref[name], name)
    check(dx, dx_ref, "x")


def test_checkpoint_names_of_a_duplicating_block():
    """The fused op changed no module: the state-dict names of reactnet-a checkpoints stay as they were."""
    block = BasicBlock(8, 16, stride=2)
    assert sorted(block._state_arrays()) == sorted([
        "threshold_3x3.bias", "conv_3x3.weight",
        "norm_3x3.gamma", "norm_3x3.beta", "norm_3x3.running_mean", "norm_3x3.running_var",
        "act_3x3.gamma", "act_3x3.slope", "act_3x3.zeta", "threshold_1x1.bias",
        *[f"pointwise.{i}.{name}" for i in (0, 1) for name in ("conv.weight", "norm.gamma", "norm.beta",
                                                               "norm.running_mean", "norm.running_var")],
        "act_1x1.gamma", "act_1x1.slope", "act_1x1.zeta",
    ])


def _count_packed_calls(monkeypatch):
    calls = []
    original = kernels.binary_conv2d

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(kernels, "binary_conv2d", counting)
    return calls


@pytest.mark.parametrize("binary_weights", [True, False])
def test_step2_binary_convs_run_on_packed_kernels_and_step1_does_not(monkeypatch, binary_weights):
    model = build_model("reactnet-a", **SMALL, binary_weights=binary_weights)
    convs = [m for m in model.modules() if isinstance(m, BinaryConv2d)]
    assert len(convs) == 3 * 2 + 2  # 3 blocks: one 3x3 each, 1x1s: two, two, one
    assert all(c.binarize_weights == binary_weights and c.quantizer.name == "approx_sign" for c in convs)
    assert all(c.weight_bits == (1 if binary_weights else 32) and c.act_bits == 1 for c in convs)
    calls = _count_packed_calls(monkeypatch)
    with no_grad():
        model(Tensor(_images(2)))
    assert len(calls) == (len(convs) if binary_weights else 0)


def test_step2_forward_equals_the_float_simulation_of_its_binary_convs():
    """The packed path computes alpha * conv(sign(x), sign(W)) (checked against a float conv of +-1s)."""
    model = build_model("reactnet-a", **SMALL)
    _randomize(model)
    conv = model.blocks[1].conv_3x3
    x = _images(2)[:, :7, :7, :1].repeat(conv.in_channels, axis=-1)
    with no_grad():
        packed = conv(Tensor(x)).data
        signs = lambda a: np.where(a < 0, -1.0, 1.0).astype(np.float32)  # noqa: E731
        reference = F.conv2d(Tensor(signs(x)), Tensor(signs(conv.weight.data)), None, 2, 1).data * conv.alpha()
    np.testing.assert_allclose(packed, reference, rtol=1e-5, atol=1e-5)


# -- two-step -------------------------------------------------------------------------------------------


def test_epoch_split_and_step_settings():
    assert recipes.split_epochs(TrainConfig(epochs=5, recipe="two-step")) == (3, 2)
    assert recipes.split_epochs(TrainConfig(epochs=5, recipe="two-step", step1_epochs=1)) == (1, 4)
    for bad in (TrainConfig(epochs=1, recipe="two-step"), TrainConfig(epochs=3, recipe="two-step", step1_epochs=3)):
        with pytest.raises(InputError):
            recipes.split_epochs(bad)
    first, second = recipes.step_configs(TrainConfig(epochs=4, recipe="two-step", weight_decay=1e-5))
    assert (first.epochs, first.weight_decay, first.recipe) == (2, 1e-5, "single")
    assert (second.epochs, second.weight_decay, second.recipe) == (2, 0.0, "single")
    with pytest.raises(InputError):
        TrainConfig(recipe="three-step")


def test_carry_over_copies_every_entry_and_refuses_a_mismatch():
    step2 = build_model("reactnet-a", **SMALL)
    step1 = recipes.step1_model(step2)
    assert step1.config["args"]["binary_weights"] is False and step2.config["args"]["binary_weights"] is True
    _randomize(step1)
    names = recipes.carry_over(step1, step2)
    source, target = step1.state_dict(), step2.state_dict()
    assert sorted(names) == sorted(source) == sorted(target)
    for name in names:
        assert np.array_equal(source[name], target[name]), name
    with pytest.raises(CheckpointError):
        recipes.carry_over(step1, build_model("reactnet-a", widths=(8, 16, 32), stem_stride=2))


def test_two_step_run_starts_step2_from_step1s_final_weights(monkeypatch, tmp_path):
    """Spy on both fits: step 2 must begin exactly where step 1 ended, entry by entry."""
    snapshots = []
    real_fit = recipes.fit

    def spying_fit(model, config, *args, **kwargs):
        start = model.state_dict()
        result = real_fit(model, config, *args, **kwargs)
        snapshots.append((model.binary_weights, config, start, model.state_dict()))
        return result

    monkeypatch.setattr(recipes, "fit", spying_fit)
    images, labels = load_split("train", 48)
    config = make_config("reactnet-a", epochs=3, recipe="two-step", batch_size=16, weight_decay=1e-5, test_limit=20)
    model = build_model("reactnet-a", **SMALL)
    out = tmp_path / "run.h5"
    result = recipes.run_recipe(model, config, (images, labels), load_split("test", 20), checkpoint=str(out),
                                progress=False)
    (bw1, config1, _, end1), (bw2, config2, start2, end2) = snapshots
    assert (bw1, bw2) == (False, True)
    assert (config1.epochs, config2.epochs, config1.weight_decay, config2.weight_decay) == (2, 1, 1e-5, 0.0)
    assert end1.keys() == start2.keys()
    for name in end1:
        assert np.array_equal(end1[name], start2[name]), name
    assert any(not np.array_equal(start2[k], end2[k]) for k in start2)  # and step 2 then trained
    assert [(h["step"], h["epoch"]) for h in result.history] == [(1, 1), (1, 2), (2, 3)]
    assert out.is_file() and recipes.step1_checkpoint_path(out).is_file()
