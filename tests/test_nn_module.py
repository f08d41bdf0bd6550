"""Module registration, dotted paths, modes, state dicts and strict loading, deterministic init."""

import numpy as np
import pytest

import numbnn.nn as nn
from numbnn.autograd import Tensor
from numbnn.errors import CheckpointError, InputError


class Affine(nn.Module):
    def __init__(self, n):
        self.scale = Tensor(np.ones(n, np.float32), requires_grad=True)
        self.offset = Tensor(np.zeros(n, np.float32), requires_grad=True)
        self.constant = Tensor(np.full(n, 7.0, np.float32))  # no grad: not a parameter
        self.register_buffer("count", np.zeros(1, np.int64))
        self.note = "plain attribute"

    def forward(self, x):
        return x * self.scale + self.offset


class Net(nn.Module):
    def __init__(self):
        self.stem = Affine(3)
        self.blocks = nn.ModuleList([Affine(3), nn.Sequential(Affine(3), Affine(3))])
        self.head = Affine(3)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def test_parameters_buffers_and_modules_have_dotted_paths_in_assignment_order():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == [
        "stem.scale", "stem.offset", "blocks.0.scale", "blocks.0.offset", "blocks.1.0.scale",
        "blocks.1.0.offset", "blocks.1.1.scale", "blocks.1.1.offset", "head.scale", "head.offset",
    ]
    assert [n for n, _ in net.named_buffers()] == ["stem.count", "blocks.0.count", "blocks.1.0.count",
                                                   "blocks.1.1.count", "head.count"]
    assert [n for n, _ in net.named_modules()] == ["", "stem", "blocks", "blocks.0", "blocks.1", "blocks.1.0",
                                                   "blocks.1.1", "head"]
    assert len(list(net.parameters())) == 10 and net.num_parameters() == 30
    assert len(list(net.children())) == 3


def test_reassignment_updates_registration_and_freezing_keeps_the_parameter():
    m = Affine(2)
    m.offset = None
    assert [n for n, _ in m.named_parameters()] == ["scale"]
    m.scale.requires_grad = False
    assert [n for n, _ in m.named_parameters()] == ["scale"]  # frozen, still saved and listed
    m.extra = Tensor(np.ones(2, np.float32), requires_grad=True)
    del m.extra
    assert [n for n, _ in m.named_parameters()] == ["scale"]
    m.count = np.ones(1, np.int64)  # a buffer reassigned with an array stays a buffer
    assert list(m.state_dict()) == ["scale", "count"]


def test_shared_submodule_is_listed_once():
    shared = Affine(2)
    seq = nn.Sequential(shared, shared)
    assert [n for n, _ in seq.named_parameters()] == ["0.scale", "0.offset"]


def test_train_eval_reaches_every_descendant():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_state_dict_copies_and_round_trips_in_place():
    a, b = Net(), Net()
    rng = np.random.default_rng(0)
    for p in a.parameters():
        p.data[...] = rng.normal(size=p.shape)
    a.head.count[0] = 5
    state = a.state_dict()
    state["stem.scale"][...] = 123.0  # a copy: the model is unaffected
    assert not np.any(a.stem.scale.data == 123.0)

    target_arrays = [p.data for p in b.parameters()]
    state = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in a.state_dict().items()}
    assert b.load_state_dict(state) == ([], [])
    for (name, p), q in zip(b.named_parameters(), a.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
        assert p.data.dtype == np.float32, name
    assert all(p.data is t for p, t in zip(b.parameters(), target_arrays))  # loaded in place
    assert b.head.count[0] == 5 and b.head.count.dtype == np.int64


def test_strict_loading_names_missing_unexpected_and_mismatched_keys():
    net = Net()
    state = net.state_dict()
    del state["head.offset"]
    state["head.bogus"] = np.zeros(3)
    state["stem.scale"] = np.zeros(4)
    before = net.state_dict()
    with pytest.raises(CheckpointError) as err:
        net.load_state_dict(state)
    message = str(err.value)
    assert "missing keys ['head.offset']" in message
    assert "unexpected keys ['head.bogus']" in message
    assert "stem.scale: shape (4,) in the checkpoint, (3,) in the model" in message
    for key, value in net.state_dict().items():  # nothing was half-loaded
        np.testing.assert_array_equal(value, before[key])


def test_non_strict_loading_reports_and_still_rejects_shape_mismatch():
    net = Net()
    state = {"stem.scale": np.full(3, 2.0), "other": np.zeros(1)}
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert unexpected == ["other"] and "stem.offset" in missing and "stem.scale" not in missing
    np.testing.assert_array_equal(net.stem.scale.data, 2.0)
    with pytest.raises(CheckpointError, match="shape"):
        net.load_state_dict({"stem.scale": np.zeros(5)}, strict=False)


def test_zero_grad_and_call_dispatch_to_forward():
    m = Affine(3)
    out = m(Tensor(np.arange(3, dtype=np.float32)))
    out.sum().backward()
    assert m.scale.grad is not None
    np.testing.assert_array_equal(m.scale.grad, [0, 1, 2])
    m.zero_grad()
    assert m.scale.grad is None and m.offset.grad is None
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1)


def test_module_list_and_sequential_behave_like_lists():
    layers = [Affine(2) for _ in range(3)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and seq[1] is layers[1] and seq[-1] is layers[2] and list(seq) == layers
    with pytest.raises(IndexError):
        seq[3]
    with pytest.raises(InputError, match="Modules"):
        nn.ModuleList([np.zeros(2)])
    for layer in layers:
        layer.scale.data[...] = 2.0
    np.testing.assert_array_equal(seq(Tensor(np.ones(2, np.float32))).data, 8.0)


def test_register_buffer_needs_an_array():
    with pytest.raises(InputError, match="buffer 'b'"):
        nn.Module().register_buffer("b", [1, 2])


def test_repr_nests_children():
    text = repr(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ModuleList([nn.BatchNorm(4)])))
    assert text == (
        "Sequential(\n"
        "  (0): Conv2d(1, 4, kernel_size=(3, 3), padding=(1, 1))\n"
        "  (1): ModuleList(\n"
        "    (0): BatchNorm(4, momentum=0.1, eps=1e-05)\n"
        "  )\n"
        ")"
    )


def build_layers(rng=None):
    return nn.Sequential(nn.Conv2d(3, 4, 3, rng=rng), nn.BinaryConv2d(4, 6, 3, groups=2, rng=rng),
                         nn.Linear(6, 5, rng=rng), nn.BinaryLinear(5, 2, rng=rng))


def test_init_is_deterministic_given_a_seed_or_an_rng():
    nn.init.seed(42)
    first = build_layers().state_dict()
    nn.init.seed(42)
    second = build_layers().state_dict()
    third = build_layers().state_dict()  # the default generator moved on
    via_rng = build_layers(np.random.default_rng(7)).state_dict()
    again = build_layers(np.random.default_rng(7)).state_dict()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
        np.testing.assert_array_equal(via_rng[key], again[key])
    assert not np.array_equal(first["0.weight"], third["0.weight"])


def test_layer_shapes_dtypes_and_init_statistics():
    conv = nn.Conv2d(64, 128, 3, groups=2, bias=True, rng=np.random.default_rng(0))
    assert conv.weight.shape == (128, 3, 3, 32) and conv.weight.dtype == np.float32
    assert conv.weight.data.std() == pytest.approx(np.sqrt(2 / (9 * 32)), rel=0.05)  # He init
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]
    lin = nn.Linear(100, 30, rng=np.random.default_rng(0))
    assert lin.weight.shape == (30, 100) and np.abs(lin.weight.data).max() <= 0.1
    bn = nn.BatchNorm(5, gamma_init=0.0)
    np.testing.assert_array_equal(bn.gamma.data, 0.0)
    assert list(bn.state_dict()) == ["gamma", "beta", "running_mean", "running_var"]
    dp = nn.DPReLU(4)
    assert [n for n, _ in dp.named_parameters()] == ["pos_slope", "neg_slope", "shift_x", "shift_y"]
    assert [n for n, _ in nn.FPReLU(4).named_parameters()] == ["pos_slope", "neg_slope"]
    assert [n for n, _ in nn.RPReLU(4).named_parameters()] == ["gamma", "slope", "zeta"]


@pytest.mark.parametrize(
    "build, match",
    [(lambda: nn.Conv2d(3, 4, 3, groups=2), "groups"), (lambda: nn.Conv2d(0, 4, 3), "in_channels"),
     (lambda: nn.Conv2d(3, 4, (3, 3, 3)), "kernel_size"), (lambda: nn.BinaryConv2d(2, 2, 1, scale="max"), "scale"),
     (lambda: nn.BinaryConv2d(2, 2, 1, act_quantizer="tanh"), "act_quantizer"),
     (lambda: nn.BinaryConv2d(2, 2, 1, act_clip=0), "act_clip"), (lambda: nn.Linear(3, 0), "out_features"),
     (lambda: nn.BatchNorm(0), "channels"), (lambda: nn.RSign(3, quantizer="none"), "1-bit sign"),
     (lambda: nn.FakeQuant(1, 1.0), "bits"), (lambda: nn.FakeQuant(8, 0.0), "bound"),
     (lambda: nn.SpaceToDepth(0), "block_size")],
)
def test_bad_constructor_arguments(build, match):
    with pytest.raises(InputError, match=match):
        build()
