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
        branch = FPReLU(BN(BinaryConv3x3_s,groups=G(sign(Shuffle_G(x)))))
        out    = branch + shortcut(x)          shortcut: identity, or AvgPool 2x2 -> Conv1x1 (float) -> BN
                                               where the unit strides or widens (Bi-Real Net's downsampling)

What the paper says (its abstract, arXiv 2010.09294): a binary convolution trained to
minimise quantization error becomes increasingly *linear*, which costs discriminative power; explicit,
re-tuned non-linear modules fix this and give a strong baseline, and "group execution" then raises the
capacity of the compressed network at no extra binary cost. Everything more specific below is an
assumption, because the paper's body could not be retrieved and it has no public code:

- Baseline: a Bi-Real-style ResNet (a real shortcut around every binary 3x3 conv, real first conv and
  classifier, real 1x1 downsampling shortcut behind a 2x2 average pool), sign with Bi-Real's ApproxSign
  gradient, per-output-channel weight scale mean|W_o| with the clipped weight STE.
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
from numbnn.errors import InputError
from numbnn.models.registry import register_model
from numbnn.nn import (
    BatchNorm, BinaryConv2d, ChannelShuffle, Conv2d, FPReLU, Linear, Module, Sequential,
)
from numbnn.models.arguments import positive_ints
from numbnn.models.layout import REACTNET_RECIPE, resnet_stages


def grouped_width(width: int, groups: int) -> int:
    """``width`` grown by sqrt(groups) and rounded to a multiple of ``groups`` (equal binary MACs, see docstring)."""
    return max(groups, groups * round(width * math.sqrt(groups) / groups))


class DownsampleShortcut(Module):
    """Bi-Real Net's real-valued shortcut where shape changes: AvgPool 2x2 (if strided) -> Conv1x1 -> BN."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        self.stride = stride
        self.conv = Conv2d(in_channels, out_channels, 1)
        self.norm = BatchNorm(out_channels)

    def forward(self, x):
        if self.stride != 1:
            x = F.avg_pool2d(x, self.stride, self.stride, "same")
        return self.norm(self.conv(x))


class BinaryUnit(Module):
    """shortcut(x) + FPReLU(BN(BinaryConv3x3(sign(shuffle(x))))) (see the module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int):
        self.shuffle = ChannelShuffle(groups) if groups > 1 else None
        self.conv = BinaryConv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups,
                                 act_quantizer="approx")
        self.norm = BatchNorm(out_channels)
        self.activation = FPReLU(out_channels)
        changes_shape = stride != 1 or in_channels != out_channels
        self.shortcut = DownsampleShortcut(in_channels, out_channels, stride) if changes_shape else None

    def forward(self, x):
        branch = self.shuffle(x) if self.shuffle is not None else x
        branch = self.activation(self.norm(self.conv(branch)))
        return branch + (self.shortcut(x) if self.shortcut is not None else x)


class BasicBlock(Sequential):
    """ResNet-18's basic block, each of its two binary 3x3 convs a :class:`BinaryUnit` (Bi-Real Net)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int):
        super().__init__(BinaryUnit(in_channels, out_channels, stride, groups),
                         BinaryUnit(out_channels, out_channels, 1, groups))


@register_model(
    "ftbnn",
    summary="FTBNN: Bi-Real ResNet, FPReLU after each binary conv, group execution (groups=1: baseline)",
    paper="FTBNN, Su et al. (arXiv 2010.09294)",
)
class Ftbnn(Module):
    """See the module docstring. ``widths``: stage widths before widening (the stem has the first);
    ``blocks``: basic blocks per stage; ``groups``: G of group execution (1 = the baseline)."""

    def __init__(self, widths=(32, 64, 128), blocks=(2, 2, 2), groups: int = 4, num_classes: int = 10,
                 in_channels: int = 1):
        widths, blocks = positive_ints(widths, "widths"), positive_ints(blocks, "blocks")
        if not widths or len(widths) != len(blocks) or min(blocks) < 1:
            raise InputError(f"widths and blocks need one entry per stage (blocks >= 1), got {widths} and {blocks}")
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise InputError(f"groups must be a positive integer, got {groups!r}")
        widths = [grouped_width(w, groups) for w in widths]
        self.stem = Conv2d(in_channels, widths[0], 3, stride=2, padding=1)
        self.stem_norm = BatchNorm(widths[0])
        self.blocks, channels = resnet_stages(
            widths, blocks, widths[0], lambda c_in, c_out, stride: BasicBlock(c_in, c_out, stride, groups))
        self.classifier = Linear(channels, num_classes)

    @classmethod
    def default_recipe(cls) -> dict:
        """ReActNet's optimiser (FTBNN's own recipe was not retrieved): :data:`~numbnn.models.layout.REACTNET_RECIPE`."""
        return dict(REACTNET_RECIPE)

    def forward(self, x):
        x = self.stem_norm(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return self.classifier(F.global_avg_pool(x))
