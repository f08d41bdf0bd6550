"""FTBNN: shapes, group execution (grouped binary convs, shuffles, equal binary MACs), FPReLU placement, training."""

import numpy as np
import pytest

import numbnn.functional as F
from numbnn.autograd import Tensor
from numbnn.errors import InputError
from numbnn.models import build_model
from numbnn.models.cost import summarize
from numbnn.models.ftbnn import BinaryUnit, grouped_width
from numbnn.nn import BinaryConv2d, ChannelShuffle, FPReLU, init
from numbnn.optim import Adam
from numbnn.train.data import load_split, normalize

SMALL = {"widths": (8, 16, 32), "blocks": (1, 1, 1)}


def images(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 28, 28, 1)).astype(np.float32)


def binary_macs(model, size=28) -> int:
    """Binary MACs per image, Ho*Wo*KH*KW*C_in/groups*C_out, with Ho, Wo from one traced forward pass."""
    shapes = {row.name: row.output_shape for row in summarize(model, (1, size, size, 1)).layers}
    total = 0
    for name, layer in model.named_modules():
        if isinstance(layer, BinaryConv2d):
            (_, ho, wo, _), (kh, kw) = shapes[name], layer.kernel_size
            total += ho * wo * kh * kw * layer.in_channels // layer.groups * layer.out_channels
    return total


@pytest.mark.parametrize("groups", [1, 4])
def test_default_builds_and_gives_logits(groups):
    model = build_model("ftbnn", groups=groups)
    model.eval()
    logits = model(Tensor(images(2)))
    assert logits.shape == (2, 10)
    assert np.all(np.isfinite(logits.data))


def test_group_execution_uses_grouped_convs_and_shuffles():
    baseline, grouped = build_model("ftbnn", groups=1), build_model("ftbnn", groups=4)
    convs = [m for m in grouped.modules() if isinstance(m, BinaryConv2d)]
    shuffles = [m for m in grouped.modules() if isinstance(m, ChannelShuffle)]
    assert len(convs) == 12 and all(conv.groups == 4 for conv in convs)
    assert len(shuffles) == len(convs) and all(s.groups == 4 for s in shuffles)
    assert not any(isinstance(m, ChannelShuffle) for m in baseline.modules())
    assert all(m.groups == 1 for m in baseline.modules() if isinstance(m, BinaryConv2d))
    # widened by sqrt(G) = 2: stem and classifier see twice the baseline's channels
    assert grouped.stem.out_channels == 2 * baseline.stem.out_channels == 64
    assert grouped.classifier.in_features == 2 * baseline.classifier.in_features == 256


@pytest.mark.parametrize("groups", [2, 4, 8])
def test_grouped_network_keeps_the_baselines_binary_macs(groups):
    baseline, grouped = build_model("ftbnn", groups=1), build_model("ftbnn", groups=groups)
    ratio = binary_macs(grouped) / binary_macs(baseline)
    assert 0.9 < ratio < 1.1, ratio
    assert binary_macs(baseline) == 21_805_056  # 12 binary 3x3 convs at 14x14, 7x7, 4x4


def test_grouped_width_rounds_to_whole_groups():
    assert grouped_width(32, 1) == 32 and grouped_width(32, 4) == 64
    assert grouped_width(32, 2) % 2 == 0 and grouped_width(20, 8) % 8 == 0


def test_shuffle_lets_each_group_read_every_group():
    """Flipping one input channel of group 0 changes the binary branch in another group only (the shuffle)."""
    init.seed(3)
    unit = BinaryUnit(8, 8, stride=1, groups=4)
    unit.eval()
    x = images(1, seed=4)[:, :6, :6].repeat(8, axis=-1) + np.arange(8, dtype=np.float32)
    branch = lambda v: unit.norm(unit.conv(unit.shuffle(Tensor(v)))).data  # noqa: E731
    flipped = x.copy()
    flipped[..., 1] = -flipped[..., 1]  # channel 1 belongs to group 0 (channels 0-1) before the shuffle
    changed = np.abs(branch(flipped) - branch(x)).reshape(-1, 8).max(axis=0) > 0
    # channel_shuffle(x, 4) puts input channel 1 at position 4, i.e. in group 2 (output channels 4-5)
    np.testing.assert_array_equal(changed, [False, False, False, False, True, True, False, False])


def test_fprelu_follows_every_binary_conv_and_learns_both_slopes():
    model = build_model("ftbnn", **SMALL, groups=2)
    units = [m for m in model.modules() if isinstance(m, BinaryUnit)]
    assert len(units) == 6
    for unit in units:
        assert isinstance(unit.activation, FPReLU)
        assert unit.activation.pos_slope.requires_grad and unit.activation.neg_slope.requires_grad
        assert not unit.activation.learn_shifts
    unit = units[1]  # a unit without a downsampling shortcut: FPReLU sits before an identity shortcut
    x = Tensor(images(4)[:, :7, :7].repeat(unit.conv.in_channels, axis=-1))
    branch = unit.activation(unit.norm(unit.conv(unit.shuffle(x))))
    np.testing.assert_allclose(unit(x).data, branch.data + x.data, rtol=1e-6, atol=1e-6)


def test_bad_groups_are_rejected():
    with pytest.raises(InputError, match="groups"):
        build_model("ftbnn", groups=0)
    with pytest.raises(InputError, match="stage"):
        build_model("ftbnn", widths=(8, 16), blocks=(1,))


def test_one_training_step_changes_every_parameter():
    init.seed(0)
    model = build_model("ftbnn", **SMALL, groups=2)
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    optimizer = Adam(list(model.parameters()), lr=1e-2)
    loss = F.cross_entropy(model(Tensor(images(8))), np.arange(8) % 10)
    loss.backward()
    optimizer.step()
    assert np.isfinite(loss.item())
    unchanged = [name for name, p in model.named_parameters() if np.array_equal(p.data, before[name])]
    assert unchanged == []


def test_adam_steps_reduce_the_loss_on_fashion_mnist():
    init.seed(1)
    raw, labels = load_split("train", 64)
    x = normalize(raw)
    model = build_model("ftbnn", **SMALL, groups=2)
    optimizer = Adam(list(model.parameters()), lr=3e-3)
    losses = []
    for _ in range(12):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(Tensor(x)), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
