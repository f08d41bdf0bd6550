"""RB-Net: shapes, RPC structure and cost (~2.25x fewer binary MACs than 3x3), cell locality and shifting,
balanced activation (centring after the sign, its packed conv and gradients), training."""

import numpy as np
import pytest

import numbnn.functional as F
from gradcheck import check_gradients
from numbnn.autograd import Tensor
from numbnn.errors import InputError
from numbnn.models import build_model
from numbnn.models.cost import summarize
from numbnn.models.rbnet import BalancedActivation, BinaryUnit, ReshapedPointwiseConv, align_cells, centred_conv
from numbnn.nn import BinaryConv2d, init
from numbnn.optim import Adam
from numbnn.train.data import load_split, normalize

SMALL = {"widths": (8, 16, 32), "blocks": (1, 1, 1)}


def images(n, size=28, seed=0):
    return np.random.default_rng(seed).normal(size=(n, size, size, 1)).astype(np.float32)


def binary_macs(model, size=28) -> int:
    """Binary MACs per image, Ho*Wo*KH*KW*C_in/groups*C_out, with Ho, Wo from one traced forward pass."""
    shapes = {row.name: row.output_shape for row in summarize(model, (1, size, size, 1)).layers}
    total = 0
    for name, layer in model.named_modules():
        if isinstance(layer, BinaryConv2d):
            (_, ho, wo, _), (kh, kw) = shapes[name], layer.kernel_size
            total += ho * wo * kh * kw * layer.in_channels // layer.groups * layer.out_channels
    return total


def macs_of(conv: str, size: int) -> int:
    return binary_macs(build_model("rbnet", conv=conv), size)


@pytest.mark.parametrize("conv", ["rpc", "3x3"])
def test_default_builds_and_gives_logits(conv):
    model = build_model("rbnet", conv=conv)
    model.eval()
    logits = model(Tensor(images(2)))
    assert logits.shape == (2, 10)
    assert np.all(np.isfinite(logits.data))


def test_every_binary_conv_is_a_pointwise_conv_on_space_to_depth_cells():
    model = build_model("rbnet")
    rpcs = [m for m in model.modules() if isinstance(m, ReshapedPointwiseConv)]
    convs = [m for m in model.modules() if isinstance(m, BinaryConv2d)]
    assert len(rpcs) == len(convs) == 12
    for unit in (m for m in model.modules() if isinstance(m, BinaryUnit)):
        c_in, c_out, rpc = unit.balance.channels, unit.norm.channels, unit.conv
        assert rpc.conv.kernel_size == (1, 1) and rpc.conv.stride == (1, 1)
        assert rpc.conv.in_channels == 4 * c_in  # a 2x2 cell of C channels is one pixel of 4C
        assert rpc.conv.out_channels == (4 * c_out if rpc.stride == 1 else c_out)
    # the second RPC of every basic block uses shifted cells, strided ones never do
    assert [rpc.shifted for rpc in rpcs] == [False, True] * 6
    assert not any(rpc.shifted for rpc in rpcs if rpc.stride == 2)


def test_rpc_costs_4_9_of_a_3x3_conv():
    # 32x32 input: every RPC map is even (16, 8, 4) -> exactly 9/4
    assert macs_of("3x3", 32) / macs_of("rpc", 32) == 2.25
    # 28x28 input: the 7x7 stage is padded to 8x8, so the whole network is a little less than 2.25x cheaper
    ratio = macs_of("3x3", 28) / macs_of("rpc", 28)
    assert 2.0 < ratio < 2.25, ratio


def changed_pixels(rpc, size, y, x):
    """Output pixels of a stride-1 ``rpc`` on a size x size map that change when input pixel (y, x) flips sign."""
    base = np.full((1, size, size, rpc.conv.in_channels // 4), 0.5, np.float32)
    flipped = base.copy()
    flipped[0, y, x, 0] = -0.5
    mean = np.zeros(base.shape[-1], np.float32)
    diff = np.abs(rpc(Tensor(flipped), mean).data - rpc(Tensor(base), mean).data).max(axis=(0, 3))
    return {tuple(int(i) for i in p) for p in np.argwhere(diff > 0)}


@pytest.mark.parametrize("size", [6, 7])
def test_rpc_outputs_see_only_their_cell_and_shifted_cells_cross_the_boundaries(size):
    init.seed(5)
    plain, shifted = ReshapedPointwiseConv(4, 4, 1), ReshapedPointwiseConv(4, 4, 1, shifted=True)
    shifted.conv.weight.data[:] = plain.conv.weight.data  # same weights: only the cell grid differs
    # pixel (2, 2): unshifted cells start at even pixels -> rows/cols {2, 3}; shifted ones at odd -> {1, 2}
    assert changed_pixels(plain, size, 2, 2) == {(2, 2), (2, 3), (3, 2), (3, 3)}
    assert changed_pixels(shifted, size, 2, 2) == {(1, 1), (1, 2), (2, 1), (2, 2)}
    # the corner (0, 0): an unshifted cell is {0, 1}; a shifted one is the wrap-around cell {size-1, 0} on
    # even maps and the cell padded above and left on odd maps
    assert changed_pixels(plain, size, 0, 0) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    wrap = {(0, 0), (0, size - 1), (size - 1, 0), (size - 1, size - 1)} if size % 2 == 0 else {(0, 0)}
    assert changed_pixels(shifted, size, 0, 0) == wrap


@pytest.mark.parametrize("size,shifted", [(6, False), (6, True), (7, False), (7, True)])
def test_align_cells_restores_the_original_pixels(size, shifted):
    x = Tensor(images(2, size, seed=1).repeat(3, axis=-1))
    aligned, restore = align_cells(x, shifted)
    assert aligned.shape[1] % 2 == 0 and aligned.shape[2] % 2 == 0
    np.testing.assert_array_equal(restore(aligned).data, x.data)


def test_strided_rpc_is_a_2x2_stride_2_cell_conv_and_handles_odd_maps():
    rpc = ReshapedPointwiseConv(4, 8, 2)
    assert rpc(Tensor(images(1, 14).repeat(4, axis=-1)), np.zeros(4, np.float32)).shape == (1, 7, 7, 8)
    assert rpc(Tensor(images(1, 7).repeat(4, axis=-1)), np.zeros(4, np.float32)).shape == (1, 4, 4, 8)
    with pytest.raises(InputError, match="strided"):
        ReshapedPointwiseConv(4, 8, 2, shifted=True)


def test_balanced_activation_centres_each_channel_after_the_sign():
    """BA in training: b = sign(x + t) minus its batch mean per channel, so every channel of b - m has
    mean 0 on the batch, a skewed channel included; the running mean follows m; evaluation uses it."""
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(16, 8, 8, 3)) + [2.0, 0.0, -0.5]).astype(np.float32)  # mostly +1, balanced, mostly -1
    ba = BalancedActivation(3)
    ba.bias.data[:] = [0.0, 0.3, 0.0]
    shifted, mean = ba(Tensor(x))
    b = np.where(shifted.data < 0, -1.0, 1.0)
    np.testing.assert_array_equal(shifted.data, x + ba.bias.data)
    np.testing.assert_allclose(mean.data, b.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose((b - mean.data).mean(axis=(0, 1, 2)), 0.0, atol=1e-6)
    assert mean.data[0] > 0.9 and mean.data[2] < -0.2  # the skewed channels' rare sign now weighs more
    np.testing.assert_allclose(ba.running_mean, 0.1 * mean.data, rtol=1e-6)
    ba.eval()
    _, stored = ba(Tensor(x))
    assert stored is ba.running_mean


def centred_reference(unit, x):
    """The float definition of conv(BA(x)): sign by ApproxSign, cells aligned (odd maps padded with +1),
    every tap centred by m (the padding too), a float conv with the conv's weight values, times alpha."""
    signs = F.approx_sign(x + unit.balance.bias)
    mean = signs.mean(axis=(0, 1, 2))
    if isinstance(unit.conv, ReshapedPointwiseConv):
        rpc = unit.conv
        aligned, restore = align_cells(signs, rpc.shifted)
        y = F.conv2d(F.space_to_depth(aligned, 2) - F.concat([mean] * 4), rpc.conv.weight_values())
        y = y * rpc.conv.alpha()
        return restore(F.depth_to_space(y, 2)) if rpc.stride == 1 else y
    padded = F.pad(signs, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return F.conv2d(padded - mean, unit.conv.weight_values(), stride=unit.conv.stride) * unit.conv.alpha()


@pytest.mark.parametrize("conv,stride,shifted,size", [("rpc", 1, False, 6), ("rpc", 1, True, 7), ("rpc", 1, False, 7),
                                                      ("rpc", 2, False, 7), ("3x3", 1, False, 5), ("3x3", 2, False, 6)])
def test_centred_conv_is_the_conv_of_centred_signs_and_has_its_gradients(conv, stride, shifted, size):
    """conv(BA(x)) on packed bits minus the per-output constant equals the float conv of sign(x + t) - m
    (padding taps centred too), and its gradients (through m and ApproxSign's STE) are the float ones."""
    init.seed(3)
    unit = BinaryUnit(3, 5, stride, conv, shifted)
    unit.balance.bias.data[:] = [0.4, -0.2, 0.0]
    for p in unit.parameters():
        p.data = p.data.astype(np.float64)  # float64 throughout: the two sides differ only in rounding
    x = np.random.default_rng(4).normal(size=(2, size, size, 3))
    binary_conv = unit.conv.conv if conv == "rpc" else unit.conv
    grads = []
    def packed(t):
        return unit.conv(*unit.balance(t)) if conv == "rpc" else centred_conv(unit.conv, *unit.balance(t))

    for forward in (packed, lambda t: centred_reference(unit, t)):
        for p in unit.parameters():
            p.grad = None
        t = Tensor(x, requires_grad=True)
        y = forward(t)
        y.backward(np.random.default_rng(6).normal(size=y.shape))
        grads.append((y.data, t.grad, unit.balance.bias.grad, binary_conv.weight.grad))
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    assert np.abs(grads[0][2]).max() > 0  # the thresholds learn through the sign and through m


def test_centring_correction_has_the_gradient_of_the_conv_of_centred_values():
    """Finite differences of conv(b - m) in W and m (real weights, step 1's conv; b fixed +-1 values)
    against autograd through centred_conv's constant, conv(b) - sum_{k,c} W_{o,k,c} m_c."""
    init.seed(6)
    conv = BinaryConv2d(3, 2, 3, padding=1, pad_value=1, binarize_weights=False)
    b = np.where(np.random.default_rng(7).normal(size=(2, 4, 4, 3)) < 0, -1.0, 1.0)
    w = np.random.default_rng(8).normal(size=conv.weight.shape)

    def centred(weight, mean):
        conv.weight = weight
        return centred_conv(conv, b, mean)

    check_gradients(centred, w, np.array([0.3, -0.5, 0.1]))
    conv.weight = Tensor(w)
    reference = F.conv2d(F.pad(Tensor(b), ((0, 0), (1, 1), (1, 1), (0, 0)), value=1.0) - np.array([0.3, -0.5, 0.1]), w)
    np.testing.assert_allclose(centred_conv(conv, b, np.array([0.3, -0.5, 0.1])).data, reference.data, atol=1e-12)


def test_units_balance_before_the_binary_conv():
    model = build_model("rbnet", **SMALL)
    units = [m for m in model.modules() if isinstance(m, BinaryUnit)]
    assert len(units) == 6 and all(isinstance(u.balance, BalancedActivation) for u in units)
    model.eval()
    x = Tensor(images(2))
    before = model(x).data
    for unit in units:
        unit.balance.running_mean[:] = 0.5  # a stored mean changes the evaluated output
    assert not np.allclose(model(x).data, before)


def test_bad_options_are_rejected():
    with pytest.raises(InputError, match="conv"):
        build_model("rbnet", conv="5x5")
    with pytest.raises(InputError, match="stride"):
        ReshapedPointwiseConv(4, 4, 3)


def test_one_training_step_changes_every_parameter():
    init.seed(0)
    model = build_model("rbnet", **SMALL)
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
    model = build_model("rbnet", **SMALL)
    optimizer = Adam(list(model.parameters()), lr=3e-3)
    losses = []
    for _ in range(12):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(Tensor(x)), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
