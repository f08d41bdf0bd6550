"""numbnn.inference.compile: parity with the float model for every registered model, exact thresholds,
what the fusion passes do, and clear errors for models the compiler cannot follow.

Parity tolerance (documented in numbnn.inference.compiler): the packed model repeats the float model's
float32 arithmetic step by step and its binary layers are exact integers in both, so predicted classes
must be equal (except exact ties in the float model's logits) and logits equal to
``LOGIT_TOL * (1 + max |logit|)``; in practice they are bit-identical.
"""

import subprocess
import sys

import numpy as np
import pytest

import numbnn.functional as F
from numbnn.autograd import Tensor, no_grad
from numbnn.datasets import fashion_mnist
from numbnn.errors import InputError
from numbnn.inference import compile
from numbnn.models import available_models, build_model
from numbnn.models.reactnet import BasicBlock
from numbnn.models.ftbnn import BinaryUnit
from numbnn.nn import BatchNorm, BinaryConv2d, BinaryLinear, Conv2d, DPReLU, Linear, Module, init
from numbnn.optim import Adam
from numbnn.train.data import normalize

LOGIT_TOL = 1e-5
SMALL_ARGS = {"reactxgb": {"trees": 3, "max_depth": 3}}


def train_a_little(model, steps=2, batch=16, lr=1e-2):
    """A few Adam steps on FashionMNIST so batch-norm statistics, thresholds and slopes are not at init."""
    images, labels = fashion_mnist("train")
    optimizer = Adam(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        part = slice(step * batch, (step + 1) * batch)
        loss = F.cross_entropy(model(Tensor(normalize(images[part]))), labels[part].astype(np.int64))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    if hasattr(model, "fit_trees"):
        with no_grad():
            features = model.features(Tensor(normalize(images[:300]))).data
        model.fit_trees(features, labels[:300], threads=1)
    return model


def float_logits(model, x):
    with no_grad():
        return model(Tensor(x)).data


def assert_parity(reference, got):
    assert got.shape == reference.shape and got.dtype == np.float32
    scale = 1.0 + np.abs(reference).max()
    assert np.abs(got - reference).max() <= LOGIT_TOL * scale
    top2 = np.sort(reference, axis=1)[:, -2:]
    untied = top2[:, 0] != top2[:, 1]
    np.testing.assert_array_equal(got.argmax(axis=1)[untied], reference.argmax(axis=1)[untied])


_TRAINED = {}


def trained(name):
    """A registered model after a few training steps (built once per test session)."""
    if name not in _TRAINED:
        _TRAINED[name] = train_a_little(build_model(name, **SMALL_ARGS.get(name, {})))
    return _TRAINED[name]


@pytest.fixture(scope="module")
def test_images():
    images, labels = fashion_mnist("test")
    return images[:200], labels[:200]


@pytest.mark.parametrize("name", [spec.name for spec in available_models() if spec.constructor.__module__.startswith("numbnn.models.")])
def test_packed_model_matches_the_float_model(name, test_images):
    model = trained(name)
    packed = compile(model)
    assert model.training is False  # modes restored (eval, as left by train_a_little)
    images, _ = test_images
    assert_parity(float_logits(model, normalize(images)), packed.predict(images))
    noise = np.random.default_rng(1).standard_normal((16, 28, 28, 1)).astype(np.float32)
    assert_parity(float_logits(model, noise), packed.predict(noise))
    probabilities = packed.predict_proba(images[:5])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    if any(isinstance(m, BinaryConv2d) for m in model.modules()):
        binary_ops = ("bconv", "bconv_steps", "bconv_moved_steps", "bdense")
        assert sum(packed.op_counts().get(op, 0) for op in binary_ops) >= 1  # binary layers really run packed


def test_reactxgb_trees_replace_the_classifier(test_images):
    model = trained("reactxgb")
    packed = compile(model)
    assert packed.graph.nodes[-1].op == "trees" and "linear" not in packed.op_counts()
    images, _ = test_images
    np.testing.assert_array_equal(packed.predict(images), float_logits(model, normalize(images)))


def test_predict_batches_and_inputs(test_images):
    packed = compile(train_a_little(build_model("bnn-small", widths=(8, 8, 16))))
    images, _ = test_images
    whole = packed.predict(images[:20])
    np.testing.assert_array_equal(packed.predict(images[:20], batch_size=7), whole)
    np.testing.assert_array_equal(packed.predict(images[:20], batch_size=1), whole)  # no image depends on its batch
    np.testing.assert_array_equal(packed.predict(images[:20, :, :, None]), whole)
    np.testing.assert_array_equal(packed.predict(normalize(images[:20])), whole)
    assert packed.predict(images[:0]).shape == (0, 10)
    with pytest.raises(InputError, match="images"):
        packed.predict(images[:2, :27])
    with pytest.raises(InputError, match="batch_size"):
        packed.predict(images[:2], batch_size=0)


# ---- exact thresholds -------------------------------------------------------------------------------


class PlainBNN(Module):
    """Binary conv -> BN -> (sign inside the next binary conv): no residual, so BN + sign become thresholds."""

    def __init__(self, bend=False):
        self.stem = Conv2d(1, 8, 3, padding=1)
        self.conv1 = BinaryConv2d(8, 16, 3, padding=1, scale=None, act_quantizer="ste")
        self.norm1 = BatchNorm(16)
        self.bend = DPReLU(16) if bend else None
        self.conv2 = BinaryConv2d(16, 8, 3, stride=2, padding=1, act_quantizer="ste")
        self.norm2 = BatchNorm(8)
        self.head = Linear(8, 10)

    def forward(self, x):
        y = self.norm1(self.conv1(self.stem(x)))
        if self.bend is not None:
            y = self.bend(y)
        return self.head(F.global_avg_pool(self.norm2(self.conv2(y))))


def _exact_zero_at(model, channel, crossing, gamma):
    """Set norm1 so that channel's output is exactly 0.0 at the integer accumulator ``crossing``."""
    norm = model.norm1
    norm.running_mean[channel], norm.running_var[channel] = 0.0, 1.0
    scale = np.float32(np.float32(gamma) * (1.0 / np.sqrt(np.float64(1.0) + norm.eps)))  # as the float model computes it
    norm.gamma.data[channel] = gamma
    norm.beta.data[channel] = -(np.float32(crossing) * scale)


def test_thresholds_are_exact_at_the_boundary():
    model = train_a_little(PlainBNN())
    _exact_zero_at(model, 0, crossing=4, gamma=0.75)
    _exact_zero_at(model, 1, crossing=-6, gamma=-1.25)
    packed = compile(model)
    (node,) = [n for n in packed.graph.nodes if n.op == "pack_acc"]
    threshold, flip = node.consts["threshold"], node.consts["flip"]
    # bit = (acc < t) XOR flip; y(acc) == 0 gives bit 0 (sign(0) = +1)
    assert (threshold[0], flip[0]) == (4, False)  # y < 0 exactly for acc <= 3
    assert (threshold[1], flip[1]) == (-5, True)  # negative scale: y < 0 exactly for acc >= -5
    # every accumulator value the layer can produce gives the float model's sign
    bound = 9 * 8
    acc = np.arange(-bound, bound + 1, dtype=np.float32)[:, None].repeat(16, axis=1)[None, None]
    n = model.norm1
    y = F.batch_norm(Tensor(acc), n.gamma, n.beta, n.running_mean, n.running_var, training=False).data[0, 0]
    bits = (np.arange(-bound, bound + 1)[:, None] < threshold) != flip
    np.testing.assert_array_equal(bits, y < 0)
    assert y[4 + bound, 0] == 0.0 and y[-6 + bound, 1] == 0.0
    noise = np.random.default_rng(2).standard_normal((8, 28, 28, 1)).astype(np.float32)
    assert_parity(float_logits(model, noise), packed.predict(noise))


def test_non_monotone_steps_keep_the_float_path():
    model = train_a_little(PlainBNN(bend=True))
    model.bend.neg_slope.data[:] = -1.0  # |u|-like: the sign switches twice, no single threshold exists
    packed = compile(model)
    assert "pack_acc" not in packed.op_counts()
    noise = np.random.default_rng(3).standard_normal((8, 28, 28, 1)).astype(np.float32)
    assert_parity(float_logits(model, noise), packed.predict(noise))


class RolledBNN(Module):
    """Rolls (np.roll) before a binary conv and on the float path: lowered to slices + a concatenation."""

    def __init__(self):
        self.stem = Conv2d(1, 8, 3, padding=1)
        self.conv = BinaryConv2d(8, 8, 3, padding=1, act_quantizer="ste")
        self.head = Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        y = self.conv(F.roll(F.roll(x, 2, 1), -3, 2))
        return self.head(F.global_avg_pool(F.roll(y, 0, 2) + F.roll(x, 27, 1)))


def test_rolls_compile_to_slices_and_keep_parity():
    model = train_a_little(RolledBNN())
    packed = compile(model)
    counts = packed.op_counts()
    assert counts.get("gather_pack") == 1 and counts.get("concat") == 1  # the conv's rolls read as one gather
    noise = np.random.default_rng(4).standard_normal((8, 28, 28, 1)).astype(np.float32)
    assert_parity(float_logits(model, noise), packed.predict(noise))

class DenseBNN(Module):
    """Flatten -> binary linear -> BN -> binary linear (its sign folds into thresholds) -> linear."""

    def __init__(self):
        self.stem = Conv2d(1, 4, 3, stride=2, padding=1)
        self.fc1 = BinaryLinear(4 * 14 * 14, 50, act_quantizer="ste")
        self.norm = BatchNorm(50)
        self.fc2 = BinaryLinear(50, 20, act_quantizer="ste", scale=None)
        self.head = Linear(20, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x.reshape(x.shape[0], -1)
        return self.head(self.fc2(self.norm(self.fc1(x))))


def test_binary_linear_layers_and_flatten():
    model = train_a_little(DenseBNN())
    packed = compile(model)
    counts = packed.op_counts()
    assert counts["bdense"] == 2 and counts["pack_acc"] == 1 and counts["reshape"] == 1
    noise = np.random.default_rng(5).standard_normal((7, 28, 28, 1)).astype(np.float32)
    assert_parity(float_logits(model, noise), packed.predict(noise))


# ---- what the fusion passes leave ------------------------------------------------------------------------


def _single_use_step_chains(graph):
    producers = graph.producers()
    return [n for n in graph.nodes if n.op == "elementwise" and n.inputs[0] in producers
            and producers[n.inputs[0]].op in ("elementwise", "bconv") and graph.use_count(n.inputs[0]) == 1]


def test_rsign_thresholds_are_folded_into_packing():
    packed = compile(build_model("bnn-small"))
    assert "concat" not in packed.op_counts()  # the repeated-channel shortcut is read in place
    # the stem's output has a pack node; the next three signs are packed by the convs writing their input.
    # RSign's bias is each packing's threshold, not a step of its own
    packs = [n for n in packed.graph.nodes if n.op == "pack"]
    writers = [n for n in packed.graph.nodes if n.extra_outputs]
    assert len(packs) == 1 and "threshold" in packs[0].consts
    assert [n.op for n in writers] == ["bconv_steps"] * 3 and all("pack_threshold" in n.consts for n in writers)
    producers = packed.graph.producers()
    assert all(producers[n.inputs[0]].attrs.get("stages") != ["add"] for n in packs)
    assert not _single_use_step_chains(packed.graph)


def test_channel_shuffles_are_folded_into_the_convs_packing(test_images):
    """FTBNN shuffles channels before every grouped binary conv: the conv writing the shuffle's input packs
    its output already permuted (pack_moves), so the only gather_pack left reads the stem's output."""
    model = trained("ftbnn")
    packed = compile(model)
    gathers = [n for n in packed.graph.nodes if n.op == "gather_pack"]
    shufflers = [n for n in packed.graph.nodes if "pack_moves" in n.attrs]
    producers = packed.graph.producers()
    assert len(gathers) == 1 and producers[gathers[0].inputs[0]].op != "bconv_steps"
    assert len(shufflers) >= 8 and all(n.op == "bconv_steps" and n.extra_outputs for n in shufflers)
    shuffles = {packed.program.ops[packed.graph.nodes.index(n)].pack_shuffle for n in shufflers}
    assert shuffles == {4}  # FTBNN's default groups: every conv's output shuffled for the next
    images, _ = test_images
    assert_parity(float_logits(model, normalize(images)), packed.predict(images))


def test_zero_padded_residuals_are_read_unpadded(test_images):
    """PokeBNN's growing blocks pad their shortcut with zero channels: the residual add reads the unpadded
    value (add_padded_input), so no pad node is left, and the logits still equal the float model's."""
    model = trained("pokebnn")
    packed = compile(model)
    assert "pad" not in packed.op_counts()
    assert sum("add_padded_input" in n.attrs.get("stages", []) for n in packed.graph.nodes) >= 1
    images, _ = test_images
    assert_parity(float_logits(model, normalize(images)), packed.predict(images))


def test_channel_shrinks_are_read_by_the_step_that_adds_them(test_images):
    """PokeBNN's channel shrink (a reshape to channel pairs and their mean) feeds only a residual add: the add
    reads the unshrunk value and takes each pair's mean itself (add_mean_input); the logits still equal the
    float model's."""
    model = trained("pokebnn")
    packed = compile(model)
    assert sum("add_mean_input" in n.attrs.get("stages", []) for n in packed.graph.nodes) == 2
    assert packed.op_counts()["reduce"] == 1  # the head's global mean is left
    images, _ = test_images
    assert_parity(float_logits(model, normalize(images)), packed.predict(images))


def test_squeeze_excite_gates_are_one_node_each(test_images, tmp_path):
    """PokeBNN's gates (spatial mean, fake quant, linear, ReLU + fake quant, linear, hard sigmoid, reshape) run as
    one squeeze_excite node each: the logits still equal the float model's, and the node survives a save and a load."""
    from numbnn.inference import load

    model = trained("pokebnn")
    packed = compile(model)
    counts = packed.op_counts()
    assert counts["squeeze_excite"] == 9 and counts["linear"] == 1  # the classifier's is left
    images, _ = test_images
    logits = packed.predict(images)
    assert_parity(float_logits(model, normalize(images)), logits)
    packed.save(tmp_path / "pokebnn.h5")
    np.testing.assert_array_equal(load(tmp_path / "pokebnn.h5").predict(images), logits)


def test_rbnet_depth_to_space_runs_in_the_convs(test_images, tmp_path):
    """Each reshaped point-wise conv of RB-Net that moves its output back to pixels (depth-to-space, shifted
    back and cropped on odd maps) runs with that move and the unit's batch norm, residual and RPReLU as one
    node, which also packs the next unit's shifted space-to-depth (all but the three read by a stride-2 conv or
    a downsampling shortcut's input): no steps node reads a moved map any more, the logits still equal the
    float model's, and the fused nodes survive a save and a load."""
    from numbnn.inference import load

    model = trained("rbnet")
    packed = compile(model)
    counts = packed.op_counts()
    assert counts["bconv_moved_steps"] == 10  # every stride-1 RPC (the two stride-2 ones move nothing back)
    assert not any(n.op == "elementwise" and "moves" in n.attrs for n in packed.graph.nodes)
    packers = [n for n in packed.graph.nodes if n.op == "bconv_moved_steps" and n.extra_outputs]
    assert len(packers) == 9 and counts["gather_pack"] == 3
    images, _ = test_images
    logits = packed.predict(images)
    assert_parity(float_logits(model, normalize(images)), logits)
    np.testing.assert_array_equal(packed.predict(images[:3], batch_size=1), logits[:3])
    packed.save(tmp_path / "rbnet.h5")
    np.testing.assert_array_equal(load(tmp_path / "rbnet.h5").predict(images), logits)


def test_rbnet_shifts_are_added_while_gathering(test_images):
    """RB-Net's balanced activation shifts x by t before every reshaped conv's space-to-depth: each
    gather_pack adds t itself (its shift; or the conv that packs for it, its pack_shift), no steps node is left
    doing only that add, and the logits still equal the float model's."""
    model = trained("rbnet")
    packed = compile(model)
    gathers = [n for n in packed.graph.nodes if n.op == "gather_pack"]
    packers = [n for n in packed.graph.nodes if n.op == "bconv_moved_steps" and n.extra_outputs]  # gather_packs fused
    assert all("shift" in n.consts for n in gathers) and all("pack_shift" in n.consts for n in packers)
    assert len(gathers) + len(packers) == 12  # every reshaped conv's input
    assert not any(n.op == "elementwise" and n.attrs["stages"] in (["add"], ["sub"]) for n in packed.graph.nodes)
    images, _ = test_images
    assert_parity(float_logits(model, normalize(images)), packed.predict(images))


def test_downsampling_shortcuts_are_pooled_by_the_convs_they_read():
    """ReActNet-A's and bnn-small's strided blocks average-pool the previous block's output, which nothing
    else reads as floats: the conv writing it pools it too (pool_size), so no avg_pool node is left."""
    for name in ("reactnet-a", "bnn-small"):
        packed = compile(build_model(name))
        assert "avg_pool" not in packed.op_counts()
        assert sum(n.attrs.get("pool_size") == 2 for n in packed.graph.nodes) == 2
        # ... and, nothing else reading it, does not write the map it pools
        assert sum(getattr(op, "write_map", True) is False for op in packed.program.ops) == 2


def test_stems_run_with_their_batch_norm():
    """Every 1-channel 3x3 stem (all zoo models but PokeBNN, whose stem is 2x2) runs with the steps after it in one
    conv2d_steps node, which no longer leaves the stem's map to a pass of its own."""
    for name in ("bnn-small", "reactnet-a", "ftbnn", "rbnet"):
        nodes = compile(build_model(name)).graph.nodes
        assert nodes[0].op == "conv2d_steps" and nodes[1].op in ("pack", "gather_pack")
    assert compile(build_model("pokebnn")).op_counts().get("conv2d_steps") is None


def test_duplicated_branches_share_one_packing():
    packed = compile(build_model("reactnet-a"))
    counts = packed.op_counts()
    # 5 blocks x (3x3 input, 1x1 input); the two 1x1 branches of a widening block are one conv, no concat;
    # each conv runs with its steps (alpha, BN, shortcut, RPReLU) in one fused pass, and every conv but the
    # last packs its output for the next block's RSign in that pass (the stem's output has its own pack)
    assert counts["bconv_steps"] == 10 and counts["pack"] == 1 and "concat" not in counts and "bconv" not in counts
    assert sum(bool(n.extra_outputs) for n in packed.graph.nodes) == 9
    stages = [n.attrs["stages"] for n in packed.graph.nodes if n.op == "bconv_steps"]
    assert ["mul", "affine", "add_input", "dprelu"] in stages
    assert not _single_use_step_chains(packed.graph)


class Tail(Module):
    """Stem conv -> one block -> pooled linear head; the block runs its own forward (with the fused op) or
    ``chain(block, x)``, the same computation as the chain of its modules."""

    def __init__(self, block, channels: int, fused: bool, chain):
        self.fused, self.chain = fused, chain
        self.stem = Conv2d(1, 8, 3, stride=2, padding=1)
        self.block = block
        self.head = Linear(channels, 10)

    def forward(self, x):
        x = self.stem(x)
        x = self.block(x) if self.fused else self.chain(self.block, x)
        return self.head(F.global_avg_pool(x))


def _reactnet_chain(block, x):
    """A ReActNet-A block (duplicating, strided): BN + residual + RPReLU as separate modules."""
    out1 = block.act_3x3(block.norm_3x3(block.conv_3x3(block.threshold_3x3.before_sign(x))) + block.shortcut(x))
    z = block.threshold_1x1.before_sign(out1)
    return block.act_1x1(F.concat([b.norm(b.conv(z)) + out1 for b in block.pointwise], axis=-1))


def _ftbnn_chain(unit, x):
    """An FTBNN unit (shuffle, grouped binary conv, BN, FPReLU, then the shortcut's add) as separate modules."""
    return unit.activation(unit.norm(unit.conv(unit.shuffle(x)))) + x


TAILS = {
    "residual-before-activation": lambda fused: Tail(BasicBlock(8, 16, stride=2), 16, fused, _reactnet_chain),
    "residual-after": lambda fused: Tail(BinaryUnit(8, 8, stride=1, groups=2), 8, fused, _ftbnn_chain),
}


def _canonical(graph):
    """The graph's nodes as (op, input nodes, attrs, consts bytes), numbered by a walk from the output."""
    producers, labels, nodes = graph.producers(), {graph.input: "input"}, []

    def visit(value):
        if value not in labels:
            node = producers[value]
            inputs = tuple(visit(v) for v in node.inputs)
            nodes.append((node.op, inputs, repr(node.attrs), tuple((k, v.tobytes()) for k, v in sorted(node.consts.items()))))
            for k, v in enumerate(node.outputs):
                labels[v] = (len(nodes) - 1, k)
        return labels[value]

    visit(graph.output)
    return nodes


@pytest.mark.parametrize("tail", TAILS)
def test_fused_block_op_compiles_to_the_chains_graph(tail):
    """BatchNormAddDPRelu lowers to the steps of the chain it fuses: trained from one seed, the fused and the
    unfused model have the same weights (training is bit for bit the same), the same compiled graph, and
    the same logits, float and packed."""
    models = []
    for fused in (True, False):
        init.seed(3)
        models.append(train_a_little(TAILS[tail](fused)))
    fused, chain = models
    for name, array in chain._state_arrays().items():
        np.testing.assert_array_equal(fused._state_arrays()[name], array, err_msg=name)
    packed = [compile(model) for model in models]
    assert _canonical(packed[0].graph) == _canonical(packed[1].graph)
    noise = np.random.default_rng(4).standard_normal((6, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(float_logits(fused, noise), float_logits(chain, noise))
    np.testing.assert_array_equal(packed[0].predict(noise), packed[1].predict(noise))
    np.testing.assert_array_equal(packed[0].predict(noise), float_logits(fused, noise))


# ---- errors ---------------------------------------------------------------------------------------------


ROUNDING = F.Quantizer("round", np.rint, lambda grad, x, clip, out=None: grad, 8)  # a quantizer that is no sign


class Sneaky(Module):
    def __init__(self, mode):
        self.mode = mode
        self.head = Linear(28 * 28, 10)

    def forward(self, x):
        x = x.reshape(x.shape[0], -1)
        if self.mode == "outside":
            return Tensor(np.maximum(self.head(x).data, 0))
        if self.mode == "hidden":
            return self.head(x + Tensor(x.data * 2))
        if self.mode == "rounding":
            return self.head(ROUNDING(x))
        return self.head(x).exp()


@pytest.mark.parametrize("mode, message", [("outside", "not computed by numbnn ops"),
                                           ("hidden", "computed outside numbnn's ops"),
                                           ("rounding", "quantizer 'round' has no packed-inference rule"),
                                           ("exp", "Exp")])
def test_models_the_compiler_cannot_follow_are_refused(mode, message):
    with pytest.raises(InputError, match=message):
        compile(Sneaky(mode))


def test_compile_checks_its_arguments():
    with pytest.raises(InputError, match="Module"):
        compile("reactnet-a")
    with pytest.raises(InputError, match="input_shape"):
        compile(build_model("bnn-small"), input_shape=(28, 28))


def test_loading_and_predicting_never_import_the_autograd(tmp_path):
    path = tmp_path / "m.h5"
    compile(build_model("bnn-small", widths=(8, 8))).save(path)
    code = ("import sys, numpy as np, numbnn.inference as inference; "
            f"inference.load({str(path)!r}).predict(np.zeros((2, 28, 28), np.uint8)); "
            "print(sorted(m for m in sys.modules if m.startswith(('numbnn.autograd', 'numbnn.functional', 'numbnn.nn'))))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_predicting_from_an_image_file_imports_neither_training_nor_the_downloader(tmp_path):
    """Start-up time of `numbnn predict`: reading an IDX or .npy file must not pull in the dataset
    downloader (urllib, rich's progress bars) or the training stack."""
    path, images = tmp_path / "m.h5", tmp_path / "x.npy"
    compile(build_model("bnn-small", widths=(8, 8))).save(path)
    np.save(images, np.zeros((2, 28, 28), np.uint8))
    code = ("import sys, numbnn.inference as inference; from numbnn.io.images import read_images; "
            f"inference.load({str(path)!r}).predict(read_images({str(images)!r})); "
            "print(sorted(m for m in sys.modules if m.startswith(('numbnn.datasets.download', 'numbnn.datasets.fashion', "
            "'numbnn.train'))))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
