"""``ftbnn``: FTBNN (Su, Fang, Guo, Hu, Pietikainen, Liu, "FTBNN: Rethinking Non-linearity for 1-bit CNNs
and Going Beyond", arXiv 2010.09294), scaled for 28x28 inputs.

Block diagram (NHWC; default ``widths=(32, 64, 128)``, ``blocks=(2, 2, 2)``; with ``groups=G`` every width
is multiplied by k = sqrt(G), rounded to a multiple of G)::

    x [N,28,28,1]
    -> Conv2d 3x3 stride 2, 1->32k (float) -> BN                 stem; 28 -> 14 (ResNet's stem also downsamples)
    -> stage 1: 2 BasicBlocks 32k          14x14
    -> stage 2: 2 BasicBlocks 64k          7x7    (the first one strided)
    -> stage 3: 2 BasicBlocks 128k         4x4    (the first one strided)
    -> global average pool -> Linear 128k->10 (float)

    BasicBlock (ResNet-18's two 3x3 convs, each wrapped in its own shortcut as in Bi-Real Net):
        x = BinaryUnit(x, stride);  x = BinaryUnit(x, 1)

    BinaryUnit(C -> C', stride s):
        branch = FPReLU(BN(BinaryConv3x3_s,groups=G(sign(Shuffle_G(x)))))     no scale factor: BN absorbs it
        out    = branch + shortcut(x)          shortcut: identity, or AvgPool 2x2 -> channels repeated
                                               where the unit strides or widens (parameter-free)

What the paper says (its abstract, arXiv 2010.09294): a binary convolution trained to
minimise quantization error becomes increasingly *linear*, which costs discriminative power; explicit,
re-tuned non-linear modules fix this and give a strong baseline, and "group execution" then raises the
capacity of the compressed network at no extra binary cost. Everything more specific below is an
assumption, because the paper's body could not be retrieved and it has no public code:

- Baseline: a Bi-Real-style ResNet (a real shortcut around every binary 3x3 conv, real first conv and
  classifier), sign with Bi-Real's ApproxSign gradient and the clipped weight STE. No weight scale
  factor, as we read the paper's simplification (assumption: its body was not retrieved); a positive
  per-output-channel scale in front of BN changes nothing BN cannot undo, so BN absorbs it.
- Downsampling shortcut: parameter-free (2x2 average pool, channels repeated as in ReActNet's channel
  duplication). Bi-Real Net's real 1x1 conv + BN there carried 0.93M of the network's 1.04M FLOPs,
  inverting the paper's "less computation" (RB-Net's Bi-Real backbone keeps that real shortcut).
- The explicit non-linearity is FPReLU, f(x) = a_c x (x >= 0), b_c x (x < 0) with both slopes learnable
  (initialised 1 and 0.25), placed after BN and *before* the shortcut addition: it bends the binary conv's
  own output (the part the paper calls too linear) while the real-valued shortcut stays an identity.
- Group execution: each binary conv becomes a G-group conv and every width grows by sqrt(G), so the binary
  MACs H*W*9*C_in*C_out/G stay equal to the baseline's; a ShuffleNet channel shuffle on the input of each
  grouped conv lets the groups exchange information. ``groups=1`` is the baseline; the default ``groups=4``
  (widths x2) is the grouped network. The paper's further "compression" step could not be reconstructed
  and is not modelled.

Scaled down for FashionMNIST: three stages instead of four (28 px runs out of resolution: 14, 7, 4), widths
32-64-128 instead of 64-512; the downsampling pools use SAME padding so 7 -> 4 works.
"""

import math

import numbnn.functional as F
from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.models.registry import register_model
from numbnn.nn import (
    BatchNorm, BinaryConv2d, ChannelShuffle, Conv2d, FPReLU, Linear, Module, Sequential, norm_activation_add,
)
from numbnn.models.arguments import positive_ints
from numbnn.models.layout import BINARY_RECIPE, resnet_stages


def grouped_width(width: int, groups: int) -> int:
    """``width`` grown by sqrt(groups) and rounded to a multiple of ``groups`` (equal binary MACs, see docstring)."""
    return max(groups, groups * round(width * math.sqrt(groups) / groups))


class FreeShortcut(Module):
    """A parameter-free shortcut where shape changes: AvgPool 2x2 (if strided), then the channels
    repeated (ReActNet's channel duplication) and cut to the output width. No FLOPs but the pooling."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        self.stride, self.in_channels, self.out_channels = stride, in_channels, out_channels

    def forward(self, x):
        if self.stride != 1:
            x = F.avg_pool2d(x, self.stride, self.stride, "same")
        if self.out_channels == self.in_channels:
            return x
        copies = -(-self.out_channels // self.in_channels)
        x = F.concat([x] * copies, axis=-1) if copies > 1 else x
        return x if copies * self.in_channels == self.out_channels else x[..., : self.out_channels]

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class BinaryUnit(Module):
    """shortcut(x) + FPReLU(BN(BinaryConv3x3(sign(shuffle(x))))) (see the module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int, binary_weights: bool = True):
        self.shuffle = ChannelShuffle(groups) if groups > 1 else None
        self.conv = BinaryConv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups,
                                 act_quantizer="approx", scale=None, binarize_weights=binary_weights)
        self.norm = BatchNorm(out_channels)
        self.activation = FPReLU(out_channels)
        changes_shape = stride != 1 or in_channels != out_channels
        self.shortcut = FreeShortcut(in_channels, out_channels, stride) if changes_shape else None

    def forward(self, x):
        branch = self.shuffle.before_conv(x) if self.shuffle is not None else x  # the conv shuffles (fewer passes)
        shortcut = self.shortcut(x) if self.shortcut is not None else x
        return norm_activation_add(self.norm, self.conv(branch), self.activation, shortcut)  # one fused op


class BasicBlock(Sequential):
    """ResNet-18's basic block, each of its two binary 3x3 convs a :class:`BinaryUnit` (Bi-Real Net)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int, binary_weights: bool = True):
        super().__init__(BinaryUnit(in_channels, out_channels, stride, groups, binary_weights),
                         BinaryUnit(out_channels, out_channels, 1, groups, binary_weights))


@register_model(
    "ftbnn",
    summary="FTBNN: Bi-Real ResNet, FPReLU after each binary conv, group execution (groups=1: baseline)",
    paper="FTBNN, Su et al. (arXiv 2010.09294)",
)
class Ftbnn(Module):
    """See the module docstring. ``widths``: stage widths before widening (the stem has the first);
    ``blocks``: basic blocks per stage; ``groups``: G of group execution (1 = the baseline);
    ``binary_weights``: False for step 1 of the two-step recipe (real weights, binary activations)."""

    def __init__(self, widths=(32, 64, 128), blocks=(2, 2, 2), groups: int = 4, num_classes: int = 10,
                 in_channels: int = 1, binary_weights: bool = True):
        widths, blocks = positive_ints(widths, "widths"), positive_ints(blocks, "blocks")
        if not widths or len(widths) != len(blocks) or min(blocks) < 1:
            raise InputError(f"widths and blocks need one entry per stage (blocks >= 1), got {widths} and {blocks}")
        groups = check_int(groups, "groups")
        widths = [grouped_width(w, groups) for w in widths]
        self.stem = Conv2d(in_channels, widths[0], 3, stride=2, padding=1)
        self.stem_norm = BatchNorm(widths[0])
        self.blocks, channels = resnet_stages(
            widths, blocks, widths[0], lambda c_in, c_out, stride: BasicBlock(c_in, c_out, stride, groups, binary_weights))
        self.classifier = Linear(channels, num_classes)

    @classmethod
    def default_recipe(cls) -> dict:
        """The shared binary recipe (:data:`~numbnn.models.layout.BINARY_RECIPE`); FTBNN's own recipe was not retrieved."""
        return dict(BINARY_RECIPE)

    def forward(self, x):
        x = self.stem_norm(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return self.classifier(F.global_avg_pool(x))
