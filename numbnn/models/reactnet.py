"""``reactnet-a``: ReActNet-A (Liu, Shen, Savvides, Cheng, ECCV 2020, arXiv 2003.03488), scaled to 28x28.

Block diagram (NHWC; the defaults)::

    x [N,28,28,1]
    -> Conv2d 3x3 stride 2, 1->32 (float) -> BN                  stem, no activation (as in the paper)    14x14
    -> BasicBlock  32->64   stride 1                                                                      14x14
    -> BasicBlock  64->128  stride 2                                                                       7x7
    -> BasicBlock 128->128  stride 1                                                                       7x7
    -> BasicBlock 128->256  stride 2                                                                       4x4
    -> BasicBlock 256->256  stride 1                                                                       4x4
    -> global average pool -> Linear 256->10 (float)

    BasicBlock(C -> C', stride s), paper Fig. 2 / ``mobilenet/2_step2/reactnet.py``:
        out1 = BN(BinaryConv3x3_s(RSign(x)))           C -> C
        out1 = RPReLU(out1 + AvgPool2x2(x) if s = 2 else out1 + x)
        z    = RSign(out1)
        C' = C  : out2 = BN(BinaryConv1x1(z)) + out1
        C' = 2C : out2 = concat(BN_a(BinaryConv1x1_a(z)) + out1, BN_b(BinaryConv1x1_b(z)) + out1)
                  (channel duplication: two separate 1x1 convs, each with its own BN and shortcut)
        out  = RPReLU(out2)

    RSign(x)  = sign(x - alpha_c)                   per-channel learnable threshold (paper eq. 1; stored as b = -alpha)
    RPReLU(x) = PReLU_beta(x - gamma_c) + zeta_c    per-channel learnable shifts (paper eq. 2)
    BinaryConv: alpha_o * conv(sign(a), sign(W))_o with alpha_o = mean|W_o| (no gradient through alpha);
    activation gradient ApproxSign (Bi-Real Net), weight gradient that of clamp(W, -1, 1).

Each ``RPReLU(BN(.) + shortcut)`` runs as one fused op (:func:`numbnn.nn.norm_add_activation`, equal to
the chain of the modules bit for bit; the modules and their parameter names are unchanged), a
duplication's two BNs, two additions, concatenation and RPReLU included.

Each binary conv takes the sign of its RSign's x + b itself (``conv(rsign.before_sign(x))``; the two 1x1
convs of a duplication share one): on packed bits (XNOR-popcount), with ApproxSign's derivative at the
real x + b (a second sign after RSign's would see +-1, where ApproxSign's derivative is 0).

Scaled down for 28x28 FashionMNIST, and assumptions:

- widths 32-64-128-128-256-256 (5 blocks) instead of the paper's 32 ... 1024 (13 blocks);
- the stem stride is an option; the default 2 downsamples early (28 -> 14), which divides the binary
  MACs by four at little cost in accuracy on this data; with ``stem_stride=1`` the maps are 28 -> 14 -> 7;
- as in the code, a block is strided where the width changes, except the first (32 -> 64);
- the strided shortcut is a 2x2 average pool with TensorFlow "same" padding, so odd maps (7x7) give the
  same output size as the padded 3x3 conv (4x4); the paper's maps are always even;
- padded border taps of the binary 3x3 conv are 0 (the paper's zero padding of the +-1 map);
- ``binary_weights=False`` gives the network of ReActNet's training step 1 (binary activations, real
  weights, no scale), used by the two-step recipe (:mod:`numbnn.train.recipes`);
- ``plain=True`` is the ablation of the paper's two functions against a plain baseline: every RSign
  becomes sign (no learnable threshold) and every RPReLU a PReLU (no learnable shifts, the same slope
  initialisation); everything else, the random initialisation included, is unchanged.
"""

import numbnn.functional as F
from numbnn.errors import InputError
from numbnn.models.registry import register_model
from numbnn.nn import (
    BatchNorm, BinaryConv2d, Conv2d, Linear, Module, ModuleList, PReLU, RPReLU, RSign, norm_add_activation,
)
from numbnn.models.arguments import positive_ints
from numbnn.models.layout import BINARY_RECIPE
from numbnn.nn.init import BINARY_LATENT_INIT

DEFAULT_WIDTHS = (32, 64, 128, 128, 256, 256)


def binary_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int, binary_weights: bool,
                latent_init: float):
    """ReActNet's HardBinaryConv: ApproxSign on the input (an RSign's, see :func:`rsign`), alpha = mean|W_o|,
    clamp STE on W; latent weights at ``latent_init`` x Kaiming (:data:`numbnn.nn.init.BINARY_LATENT_INIT`
    by default)."""
    return BinaryConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                        act_quantizer="approx", scale="mean_abs", binarize_weights=binary_weights,
                        latent_init=latent_init)


def rsign(threshold: RSign | None, x):
    """RSign(x) as a binary conv's input (paper eq. 1), or x itself in the ``plain`` ablation (the conv's sign)."""
    return x if threshold is None else threshold.before_sign(x)


def activation(channels: int, plain: bool):
    """RPReLU, or PReLU for the ``plain`` ablation."""
    return PReLU(channels) if plain else RPReLU(channels)


class PointwiseBranch(Module):
    """One half of a duplication: a binary 1x1 conv on the RSign'd input and its BN, whose output plus the
    block's shortcut goes through the block's RPReLU (:class:`BasicBlock` runs the BNs of all branches, the
    additions and the RPReLU as one fused op)."""

    def __init__(self, channels: int, binary_weights: bool, latent_init: float):
        self.conv = binary_conv(channels, channels, 1, 1, binary_weights, latent_init)
        self.norm = BatchNorm(channels)


class BasicBlock(Module):
    """ReActNet-A's block: binary 3x3 (C -> C, stride s) then binary 1x1 (C -> C or 2C), see module docstring."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, binary_weights: bool = True,
                 latent_init: float = BINARY_LATENT_INIT, plain: bool = False):
        if out_channels not in (in_channels, 2 * in_channels):
            raise InputError(f"a ReActNet block keeps or doubles its width, got {in_channels} -> {out_channels}")
        if stride not in (1, 2):
            raise InputError(f"stride must be 1 or 2, got {stride!r}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        # RSign before each binary conv (Fig. 2); plain: the conv's own sign alone
        self.threshold_3x3 = None if plain else RSign(in_channels)
        self.conv_3x3 = binary_conv(in_channels, in_channels, 3, stride, binary_weights, latent_init)
        self.norm_3x3 = BatchNorm(in_channels)
        self.act_3x3 = activation(in_channels, plain)
        self.threshold_1x1 = None if plain else RSign(in_channels)
        copies = out_channels // in_channels  # 2 = channel duplication
        self.pointwise = ModuleList(PointwiseBranch(in_channels, binary_weights, latent_init) for _ in range(copies))
        self.act_1x1 = activation(out_channels, plain)

    def shortcut(self, x):
        return F.avg_pool2d(x, 2, 2, padding="same") if self.stride == 2 else x

    def forward(self, x):
        # RPReLU(BN(...) + shortcut) is one fused op each time (nn.norm_add_activation)
        out1 = norm_add_activation(self.norm_3x3, self.conv_3x3(rsign(self.threshold_3x3, x)), self.shortcut(x),
                                   self.act_3x3)
        z = rsign(self.threshold_1x1, out1)  # once: both 1x1 convs of a duplication read it
        # RPReLU(concat(BN_a(conv_a(z)) + out1, BN_b(conv_b(z)) + out1)), or RPReLU(BN(conv(z)) + out1)
        convs = [branch.conv(z) for branch in self.pointwise]
        return norm_add_activation([branch.norm for branch in self.pointwise], convs, out1, self.act_1x1)


def block_strides(widths) -> list[int]:
    """ReActNet's rule: stride 2 where the width changes, except the first block (32 -> 64 in the paper)."""
    return [1 if i == 0 or c_out == c_in else 2 for i, (c_in, c_out) in enumerate(zip(widths, widths[1:]))]


@register_model("reactnet-a", summary="ReActNet-A: RSign/RPReLU MobileNet-like BNN, 3x3 + 1x1 binary convs, channel duplication",
                paper="Liu et al., ECCV 2020, arXiv 2003.03488")
class ReActNetA(Module):
    """See the module docstring.

    ``widths``: the stem's output channels, then each block's; consecutive widths are equal or double.
    ``stem_stride``: 1 or 2. ``binary_weights``: False for training step 1 (real weights).
    ``latent_init``: scale of the binary convs' initial latent weights (see :func:`binary_conv`).
    ``plain``: sign and PReLU in place of RSign and RPReLU (the ablation, module docstring).
    """

    def __init__(self, widths=DEFAULT_WIDTHS, stem_stride: int = 2, binary_weights: bool = True,
                 latent_init: float = BINARY_LATENT_INIT, num_classes: int = 10, in_channels: int = 1,
                 plain: bool = False):
        widths = positive_ints(widths, "widths")
        if len(widths) < 2:
            raise InputError(f"widths needs the stem width and at least one block width, got {widths}")
        if stem_stride not in (1, 2):
            raise InputError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
        if not isinstance(plain, bool):
            raise InputError(f"plain must be true or false, got {plain!r}")
        self.widths, self.binary_weights = widths, bool(binary_weights)
        self.stem = Conv2d(in_channels, widths[0], 3, stride=stem_stride, padding=1)
        self.stem_norm = BatchNorm(widths[0])
        self.blocks = ModuleList(
            BasicBlock(c_in, c_out, s, self.binary_weights, latent_init, plain)
            for (c_in, c_out), s in zip(zip(widths, widths[1:]), block_strides(widths))
        )
        self.classifier = Linear(widths[-1], num_classes)

    @classmethod
    def default_recipe(cls) -> dict:
        """The shared binary recipe (:data:`~numbnn.models.layout.BINARY_RECIPE`), chosen on this model,
        for 9 epochs instead of 8: what fits the default command's 15-minute budget on the 2-core Intel
        Xeon at ~85 s an epoch. `numbnn train --model reactnet-a --json` reached 92.31% in 14.9 minutes
        (benchmarks/results/reactnet-a-default-9ep.json); 10 epochs 92.48% in 15.4 minutes
        (reactnet-a-noaug-10ep.json); with the former crop + flip, 11 epochs 91.37% in 14.3 minutes at
        ~70 s an epoch (reactnet-a-default-11ep.json)."""
        return {**BINARY_RECIPE, "epochs": 9}

    def features(self, x):
        """The pooled features [N, widths[-1]] the classifier (or ReActXGB's trees) sees."""
        x = self.stem_norm(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return F.global_avg_pool(x)

    def forward(self, x):
        return self.classifier(self.features(x))
