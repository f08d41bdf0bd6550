"""The cost model (numbnn.models.cost): hand-computed figures for small models, full ReActNet-A against
the figures its README and PokeBNN's abstract publish, the cost_extra hook and tree pricing, and bad input."""

import numpy as np
import pytest

import numbnn.functional as F
from numbnn.errors import InputError
from numbnn.models import available_models, build_model
from numbnn.models.cost import CostExtra, summarize, tree_ensemble_cost
from numbnn.nn import BatchNorm, BinaryConv2d, BinaryLinear, Conv2d, FakeQuant, Linear, Module, RSign


class Tiny(Module):
    """float conv (stride 2, bias) -> BN -> binary conv -> grouped binary conv (stride 2) -> pool -> linear."""

    def __init__(self):
        self.stem = Conv2d(1, 8, 3, stride=2, padding=1, bias=True)  # 28 -> 14
        self.norm = BatchNorm(8)
        self.binary = BinaryConv2d(8, 16, 3, padding=1)  # 14 -> 14
        self.grouped = BinaryConv2d(16, 32, 3, stride=2, padding=1, groups=4)  # 14 -> 7
        self.head = Linear(32, 10)

    def forward(self, x):
        x = self.grouped(self.binary(self.norm(self.stem(x))))
        return self.head(F.global_avg_pool(x))


def _by_name(report):
    return {row.name: row for row in report.layers}


def test_tiny_model_by_hand():
    report = summarize(Tiny())
    rows, total = _by_name(report), report.total
    stem_macs = 14 * 14 * (3 * 3 * 1) * 8  # out pixels x taps x C_in x C_out
    binary_macs = 14 * 14 * (3 * 3 * 8) * 16
    grouped_macs = 7 * 7 * (3 * 3 * 16 // 4) * 32  # C_in / groups per output channel
    head_macs = 32 * 10
    assert (rows["stem"].flops, rows["stem"].bops) == (stem_macs, 0)
    assert (rows["binary"].flops, rows["binary"].bops) == (0, binary_macs)
    assert (rows["grouped"].flops, rows["grouped"].bops) == (0, grouped_macs)
    assert rows["head"].flops == head_macs
    assert rows["grouped"].output_shape == (1, 7, 7, 32)
    assert (rows["grouped"].weight_bits, rows["grouped"].act_bits) == (1, 1)

    binary_params = 16 * 9 * 8 + 32 * 9 * 4
    real_params = (8 * 9 + 8) + (8 + 8) + (32 * 10 + 10)  # stem w+b, BN gamma+beta, head w+b
    assert (total.binary_params, total.real_params, total.params) == (binary_params, real_params, 2730)
    assert total.buffers == 16  # BN running mean and variance: buffers, not params
    assert rows["norm"].params == 16 and rows["norm"].buffers == 16
    assert total.size_bits == binary_params * 1 + real_params * 32
    assert total.size_bytes == 1992
    assert total.flops == stem_macs + head_macs
    assert total.bops == binary_macs + grouped_macs
    assert total.ops == total.bops / 64 + total.flops == 18842
    assert total.ace == 256 * (stem_macs + head_macs) + 1 * (binary_macs + grouped_macs) == 3976832
    # packed: each output channel and tap holds ceil(C_in/groups / 64) = 1 word of 8 bytes, plus a float32
    # alpha per output channel; everything else (params and the 16 BN buffers) float32
    assert rows["binary"].packed_size_bytes == 16 * 9 * 1 * 8 + 16 * 4
    assert rows["grouped"].packed_size_bytes == 32 * 9 * 1 * 8 + 32 * 4
    assert total.packed_size_bytes == (16 * 9 * 8 + 16 * 4) + (32 * 9 * 8 + 32 * 4) + 4 * (real_params + 16)
    assert [row.name for row in report.layers] == ["stem", "norm", "binary", "grouped", "head"]
    assert total.params == Tiny().num_parameters()


class Mixed(Module):
    """The special cases: ReActNet step-1 conv, binary weights on real inputs, 4-bit fake quant, BinaryLinear
    with a 100-wide input (two words, 36 tail bits), a layer called twice, one never called, and a float
    layer fed by RSign."""

    def __init__(self):
        self.step1 = BinaryConv2d(1, 4, 3, padding=1, binarize_weights=False)  # real W x binary a
        self.real_act = BinaryConv2d(4, 4, 1, act_quantizer=None, scale=None)  # binary W x real a
        self.quant = FakeQuant(4, bound=3.0)
        self.se = Conv2d(4, 4, 1, bias=True)
        self.se.weight_bits = 4  # a model that fake-quantizes weights says so on the layer
        self.shared = Linear(4, 4, bias=False)
        self.unused = Linear(7, 3)
        self.wide = Linear(4, 100)
        self.bin_head = BinaryLinear(100, 10)
        self.sign = RSign(10)
        self.after_sign = Linear(10, 2)  # a float layer, but fed +-1 by RSign: real weight x 1-bit activation

    def forward(self, x):
        x = self.se(self.quant(self.real_act(self.step1(x))))
        x = self.shared(self.shared(F.global_avg_pool(x)))
        return self.after_sign(self.sign(self.bin_head(self.wide(x))))


def test_special_layers():
    report = summarize(Mixed(), (1, 5, 5, 1))
    rows, total = _by_name(report), report.total
    step1_macs = 25 * 9 * 4
    assert (rows["step1"].flops, rows["step1"].bops, rows["step1"].ace) == (step1_macs, 0, 16 * 1 * step1_macs)
    assert (rows["step1"].binary_params, rows["step1"].real_params) == (0, 36)
    assert rows["step1"].packed_size_bytes == 4 * 36  # real weights, no scale

    real_act_macs = 25 * 4 * 4
    assert (rows["real_act"].flops, rows["real_act"].ace) == (real_act_macs, 1 * 16 * real_act_macs)
    assert rows["real_act"].binary_params == 16
    assert rows["real_act"].packed_size_bytes == 4 * 1 * 1 * 8  # 4 channels x 1 word; no scale (scale=None)

    se_macs = 25 * 4 * 4
    assert (rows["se"].weight_bits, rows["se"].act_bits) == (4, 4)  # act bits from the FakeQuant feeding it
    assert (rows["se"].flops, rows["se"].ace) == (se_macs, 4 * 4 * se_macs)
    assert rows["se"].size_bits == 16 * 4 + 4 * 32  # 4-bit weights, 32-bit bias
    assert rows["se"].packed_size_bytes == 4 * (16 + 4)  # the export keeps them as float32

    assert (rows["shared"].calls, rows["shared"].flops) == (2, 2 * 16)
    assert (rows["unused"].calls, rows["unused"].flops, rows["unused"].params) == (0, 0, 7 * 3 + 3)
    assert rows["unused"].note == "not run by forward()"

    assert (rows["bin_head"].bops, rows["bin_head"].flops, rows["bin_head"].binary_params) == (1000, 0, 1000)
    assert rows["bin_head"].packed_size_bytes == 10 * 2 * 8 + 10 * 4  # ceil(100/64) = 2 words per output

    assert (rows["after_sign"].act_bits, rows["after_sign"].flops, rows["after_sign"].ace) == (1, 20, 16 * 1 * 20)

    assert total.bops == 1000
    assert total.flops == step1_macs + real_act_macs + se_macs + 2 * 16 + 4 * 100 + 20
    assert total.ace == (16 * step1_macs + 16 * real_act_macs + 16 * se_macs + 256 * (2 * 16 + 4 * 100) + 1000
                         + 16 * 20)
    assert total.params == Mixed().num_parameters()


class OpsOutsideLayers(Module):
    """Quantization done by functional ops, not by a quantizing module: a float layer fed F.sign's output,
    and a layer whose weight is fake-quantized by the parent before the layer's op uses it."""

    def __init__(self):
        self.head = Linear(10, 4)
        self.tail = Linear(4, 2)

    def forward(self, x):
        x = self.head(F.sign(F.reshape(x, (-1, 10))))
        return F.linear(F.fake_quant(x, 4, 1.0), F.fake_quant(self.tail.weight, 4, 1.0), self.tail.bias)


def test_layers_are_priced_from_the_ops_that_use_their_weights():
    rows = _by_name(summarize(OpsOutsideLayers(), (1, 1, 1, 10)))
    assert (rows["head"].act_bits, rows["head"].flops, rows["head"].ace) == (1, 40, 16 * 1 * 40)
    assert (rows["tail"].calls, rows["tail"].act_bits, rows["tail"].flops) == (1, 4, 8)  # weight_bits: the layer's


def test_counts_are_per_image_and_the_model_is_left_as_it_was():
    model = Tiny()
    model.train()
    before = {name: array.copy() for name, array in model.state_dict().items()}
    one = summarize(model, (1, 28, 28, 1)).total
    four = summarize(model, (4, 28, 28, 1)).total
    assert (four.flops, four.bops, four.ace) == (one.flops, one.bops, one.ace)
    assert all(module.training for module in model.modules())
    after = model.state_dict()
    assert all(np.array_equal(before[name], after[name]) for name in before)
    model.eval()
    summarize(model)
    assert not any(module.training for module in model.modules())


def test_input_size_changes_the_macs_not_the_params():
    small, large = summarize(Tiny(), (1, 28, 28, 1)).total, summarize(Tiny(), (1, 56, 56, 1)).total
    assert large.params == small.params
    assert large.bops == 4 * small.bops  # every map has four times the pixels


class TreeHeaded(Tiny):
    """A model whose deployed head is a tree ensemble, as ReActXGB's."""

    def __init__(self, exclude=("head",), rows=None):
        super().__init__()
        self.exclude, self.rows = list(exclude), rows

    def cost_extra(self):
        trees = [([1, -1, 3, -1, -1], [2, -1, 4, -1, -1]), ([-1], [-1])]
        rows = self.rows if self.rows is not None else [tree_ensemble_cost("trees", trees, 10)]
        return CostExtra(rows=rows, exclude=self.exclude)


def test_tree_ensemble_cost():
    # tree 0: root 0 -> (1 leaf, 2); 2 -> (3 leaf, 4 leaf): 2 splits, 3 leaves, depth 2. tree 1: one leaf.
    trees = [([1, -1, 3, -1, -1], [2, -1, 4, -1, -1]), ([-1], [-1])]
    row = tree_ensemble_cost("trees", trees, 3)
    assert (row.comparisons, row.flops, row.bops, row.ace) == (2, 2, 0, 0)
    assert (row.real_params, row.binary_params) == (2 + 4 + 3, 0)  # a threshold per split, a value per leaf, 3 bases
    assert row.size_bits == 32 * (2 * 2 + 4 + 3)  # + a feature index per split
    assert row.size_bytes == 44
    # the trees op's arrays: 6 nodes x (int16 + float32) + 1 byte of bits, tree_start 3 x 4, tree_class 2 x 2, base 3 x 4
    assert row.packed_size_bytes == 36 + 1 + 12 + 4 + 12
    # vector leaves (one margin per class in every leaf): 4 leaves x 3 values; comparisons do not change
    vector = tree_ensemble_cost("trees", trees, 3, leaf_size=3)
    assert vector.comparisons == 2 and "2 trees" in vector.note
    assert vector.real_params == 2 + 4 * 3 + 3 and vector.size_bits == 32 * (2 * 2 + 4 * 3 + 3)
    assert vector.packed_size_bytes == row.packed_size_bytes + 4 * 3 * 4  # + leaf_vectors [4, 3] float32
    # depth counts the longest path, wherever it is: a left-leaning chain of 3 splits
    chain = tree_ensemble_cost("t", [([1, 2, 3, -1, -1, -1, -1], [6, 5, 4, -1, -1, -1, -1])], 1)
    assert chain.comparisons == 3
    for bad in ({"n_classes": 0}, {"n_classes": 3, "leaf_size": 2}, {"n_classes": 3, "leaf_size": 0}):
        with pytest.raises(InputError):
            tree_ensemble_cost("trees", trees, **bad)


@pytest.mark.parametrize("left, right", [
    ([1, -1], [2, -1]),  # child index out of range
    ([1, -1, -1], [-1, -1, -1]),  # a node with one child
    ([1, 0, -1], [2, 2, -1]),  # cycle / node reached twice
    ([-1, -1, -1], [-1, -1, -1]),  # unreachable nodes
    ([], []),
    ([1, -1, -1], [2, -1]),  # unequal lengths
])
def test_malformed_trees(left, right):
    with pytest.raises(InputError):
        tree_ensemble_cost("trees", [(left, right)], 10)


def test_cost_extra_replaces_the_head():
    plain, treed = summarize(Tiny()).total, summarize(TreeHeaded())
    names = [row.name for row in treed.layers]
    assert "head" not in names and names[-1] == "trees"
    total = treed.total
    assert total.flops == plain.flops - 32 * 10 + 2  # the FC's MACs out, the trees' comparisons in
    assert total.ace == plain.ace - 256 * 32 * 10
    assert total.real_params == plain.real_params - 330 + 6 + 10  # + the trees' 10 base margins
    assert total.comparisons == 2
    assert "excluded by the model's cost_extra(): head (330 params, 1,320 bytes)" in treed.notes


def test_cost_extra_errors():
    with pytest.raises(InputError, match="not a module path"):
        summarize(TreeHeaded(exclude=["classifier"]))
    with pytest.raises(InputError, match="LayerCost"):
        summarize(TreeHeaded(rows=[{"name": "trees"}]))

    class Wrong(Tiny):
        def cost_extra(self):
            return []

    with pytest.raises(InputError, match="CostExtra"):
        summarize(Wrong())


@pytest.mark.parametrize("shape", [(28, 28, 1), (1, 28, 28, 0), (1, 28.0, 28, 1), "x", None, (True, 28, 28, 1)])
def test_bad_input_shape(shape):
    with pytest.raises(InputError, match="input_shape"):
        summarize(Tiny(), shape)


def test_not_a_module():
    with pytest.raises(InputError, match="Module"):
        summarize(object())


FULL_REACTNET_A = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]


def test_reactnet_a_at_224_matches_the_published_figures():
    """ReActNet-A at 224 px (layout of liuzechun/ReActNet ``mobilenet/2_step2/reactnet.py``): BOPs 4.817e9,
    FLOPs 1.186e7 (first conv 10.8M + FC 1.02M), so OPs 0.871e8, the "0.87 x 10^8" of that repository's
    README.md; ACE 7.85e9, PokeBNN's abstract (arXiv 2112.00133) gives ReActNet-Adam 7.9, which is what
    pricing a float MAC at 16 x 16 bits reproduces."""
    model = build_model("reactnet-a", widths=FULL_REACTNET_A, stem_stride=2, in_channels=3, num_classes=1000)
    report = summarize(model, (1, 224, 224, 3))
    total, rows = report.total, _by_name(report)
    assert rows["stem"].flops == 112 * 112 * 9 * 3 * 32  # 10.8M
    assert rows["classifier"].flops == 1024 * 1000
    assert round(total.bops / 1e9, 3) == 4.817
    assert round(total.flops / 1e7, 3) == 1.186
    assert round(total.ops / 1e8, 3) == 0.871
    assert round(total.ace / 1e9, 2) == 7.85
    assert round(total.binary_params / 1e6, 1) == 28.3  # our count; ReActXGB's -1.02% size is judged on it


def test_reactnet_a_tiny_matches_hand_counts():
    """"ReActNet-A-tiny" (widths 32-64-128-128-256-256 on 28 px; our arithmetic): stride-1 stem BOPs 90.7M,
    FLOPs 0.23M, OPs 1.65M, 1.06M binary weights; stride-2 stem BOPs 25.8M, OPs 0.46M. Step 1 (real weights
    on binary activations) moves every binary MAC to FLOPs at 16 ACE each."""
    widths = [32, 64, 128, 128, 256, 256]
    stride1 = summarize(build_model("reactnet-a", widths=widths, stem_stride=1)).total
    assert round(stride1.bops / 1e6, 1) == 90.7
    assert (round(stride1.flops / 1e6, 2), round(stride1.ops / 1e6, 2)) == (0.23, 1.65)
    assert round(stride1.binary_params / 1e6, 2) == 1.06
    stride2 = summarize(build_model("reactnet-a", widths=widths, stem_stride=2)).total
    assert (round(stride2.bops / 1e6, 1), round(stride2.ops / 1e6, 2)) == (25.8, 0.46)
    step1 = summarize(build_model("reactnet-a", widths=widths, stem_stride=2, binary_weights=False)).total
    assert step1.bops == 0 and step1.binary_params == 0
    assert step1.flops == stride2.flops + stride2.bops
    assert step1.ace == 16 * stride2.bops + 256 * stride2.flops


@pytest.mark.parametrize("spec", available_models(), ids=lambda spec: spec.name)
def test_every_registered_model_is_priced(spec):
    """Params and buffers add up to the model's own counts (less what cost_extra drops, plus its rows)."""
    model = build_model(spec.name)
    report = summarize(model)
    total = report.total
    extra = model.cost_extra() if hasattr(model, "cost_extra") else CostExtra()
    dropped_size = sum(p.size for name, p in model.named_parameters()
                       if any(name.startswith(path + ".") for path in extra.exclude))
    assert total.params == model.num_parameters() - dropped_size + sum(row.params for row in extra.rows)
    assert total.buffers <= sum(array.size for array in model.buffers())
    assert total.flops + total.bops > 0
    assert total.ops == total.bops / 64 + total.flops
    for row in report.layers:
        if row.weight_bits in (None, 1, 32) and row.kind != "trees":
            assert row.size_bits == row.binary_params + 32 * row.real_params, row.name
