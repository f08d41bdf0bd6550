"""``bnn-small``: the first, small binary network, a ReActNet-style residual BNN for 28x28 inputs.

Block diagram (NHWC; widths are the defaults)::

    x [N,28,28,1]
    -> Conv2d 3x3, 1->32 (float) -> BN                          stem: the input stays real, as in every BNN paper
    -> BinaryBlock 32->32  stride 1   28x28
    -> BinaryBlock 32->64  stride 2   14x14
    -> BinaryBlock 64->128 stride 2    7x7
    -> BinaryBlock 128->128 stride 1   7x7
    -> global average pool -> Linear 128->10 (float)            the classifier stays real as well
                                                                (head="flatten": Linear on the flat 7x7x128 maps)

    BinaryBlock(C -> C', stride s):
        out = BN(BinaryConv3x3_s(RSign(x)))      alpha_o = mean|W_o| per output channel (XNOR-Net)
        out = out + shortcut(x)                  shortcut: AvgPool 2x2 when s = 2, channels repeated C'/C times
        out = RPReLU(out)

Why this shape: it keeps ReActNet's ingredients (Liu et al. 2020, arXiv 2003.03488) at a size that trains
in about a minute per epoch on two cores. RSign (a learnable per-channel threshold before the sign) and
RPReLU (learnable shifts around a PReLU) let each channel move the distribution the sign sees; the real
shortcut around every binary conv carries the real-valued information a 1-bit conv throws away
(Bi-Real Net); BN after the binary conv rescales the popcount sums. The shortcut is parameter-free
(average pooling, channel repetition as ReActNet's channel duplication) so the only real-valued
weights are the stem and the classifier. The binary conv takes the sign of the RSign's x + b itself
(``conv(rsign.before_sign(x))``), on packed bits (XNOR-popcount), with ApproxSign's derivative
(Bi-Real Net, arXiv 1808.00278) at x + b; the weights get the clipped STE (gradient of clamp(W, -1, 1)).
A block's stride is 2 exactly where the width grows.
"""

import numbnn.functional as F
from numbnn.errors import InputError
from numbnn.models.registry import register_model
from numbnn.models.arguments import positive_ints
from numbnn.models.layout import BINARY_RECIPE, NO_TEACHER, growth_blocks, head_features
from numbnn.nn import BatchNorm, BinaryConv2d, Conv2d, Linear, Module, RPReLU, RSign, norm_add_activation


class BinaryBlock(Module):
    """RSign -> BinaryConv2d 3x3 -> BN, plus a real shortcut, then RPReLU (see the module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, binary_weights: bool = True):
        if out_channels % in_channels:
            raise InputError(f"a block's width can only grow by a whole factor, got {in_channels} -> {out_channels}")
        self.stride, self.repeat = stride, out_channels // in_channels
        self.threshold = RSign(in_channels)  # ApproxSign, taken by the conv on its packed path
        self.conv = BinaryConv2d(in_channels, out_channels, 3, stride=stride, padding=1, binarize_weights=binary_weights)
        self.norm = BatchNorm(out_channels)
        self.activation = RPReLU(out_channels)

    def shortcut(self, x):
        """The pooled input; its channels are repeated ``repeat`` times inside the fused op below."""
        if self.stride != 1:
            x = F.avg_pool2d(x, self.stride, padding="same")  # ceil(H / s) rows, like the strided conv
        return x

    def forward(self, x):
        out = self.conv(self.threshold.before_sign(x))
        # RPReLU(BN(out) + concat([shortcut(x)] * repeat)) as one fused op
        return norm_add_activation(self.norm, out, self.shortcut(x), self.activation, residual_copies=self.repeat)


@register_model("bnn-small", summary="Small ReActNet-style BNN: float stem, 4 binary residual blocks, float classifier",
                paper="ReActNet (arXiv 2003.03488), simplified")
class BnnSmall(Module):
    """See the module docstring. ``widths``: output channels of the stem and of each binary block;
    ``binary_weights``: False for step 1 of the two-step recipe (real weights, binary activations)."""

    def __init__(self, widths=(32, 32, 64, 128, 128), num_classes: int = 10, in_channels: int = 1,
                 head: str = "pool", image_size: int = 28, binary_weights: bool = True):
        widths = positive_ints(widths, "widths")
        features = head_features(widths, head, image_size)
        self.head = head
        self.stem = Conv2d(in_channels, widths[0], 3, padding=1)
        self.stem_norm = BatchNorm(widths[0])
        self.blocks = growth_blocks(widths, lambda c_in, c_out, stride: BinaryBlock(c_in, c_out, stride, binary_weights))
        self.classifier = Linear(features, num_classes)

    @classmethod
    def default_recipe(cls) -> dict:
        """The shared binary recipe (:data:`~numbnn.models.layout.BINARY_RECIPE`) at half its batch and
        learning rate (the same lr per image, twice the steps): this small model is the one a first
        command trains on a few thousand images. One epoch on 2,000 images (``numbnn train --model
        bnn-small --epochs 1 --limit 2000``), seeds 0-2: 56.7% mean test accuracy at batch 64 / lr 2e-3
        (seeds 1-3), 62.1% at batch 32 / lr 1e-3; on 10,000 images 72.9% -> 74.7% (Intel Xeon, 2 threads;
        benchmarks/results/proxies-*.json). Rerun one point with ``python3 benchmarks/proxies.py --label L
        --limit 2000 --models bnn-small -- --seed 1 --batch-size 64 --lr 2e-3``.

        No distillation: with the shipped resnet-20 teacher the same proxies gave 57.71% on 2,000 images
        (against 61.20% without) and 74.64% on 10,000 (74.71% without): the teacher's soft targets do
        not help this model on short runs (benchmarks/results/proxies-teacher*.json)."""
        return {**BINARY_RECIPE, "batch_size": 32, "lr": 1e-3, "teacher": NO_TEACHER}

    def forward(self, x):
        x = self.stem_norm(self.stem(x))
        for block in self.blocks:
            x = block(x)
        x = F.global_avg_pool(x) if self.head == "pool" else x.reshape(x.shape[0], -1)
        return self.classifier(x)
