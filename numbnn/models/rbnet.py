"""``rbnet``: RB-Net (Liu, Ding, Chen, Zhuang, Wang, Zhao, Zhang, Han, "RB-Net: Training Highly Accurate and
Efficient Binary Neural Networks with Reshaped Point-wise Convolution and Balanced Activation", IEEE TCSVT
32(9):6414-6424, 2022), scaled for 28x28 inputs.

Block diagram (NHWC; default ``widths=(32, 64, 128)``, ``blocks=(2, 2, 2)``)::

    x [N,28,28,1]
    -> Conv2d 3x3 stride 2, 1->32 (float) -> BN        stem; 28 -> 14
    -> stage 1: 2 BasicBlocks 32           14x14
    -> stage 2: 2 BasicBlocks 64           7x7    (the first one strided)
    -> stage 3: 2 BasicBlocks 128          4x4    (the first one strided)
    -> global average pool -> Linear 128->10 (float)

    BasicBlock: BinaryUnit(stride) then BinaryUnit(1, shifted cells)   (ResNet-18 block, a shortcut per conv)
    BinaryUnit(C -> C', stride s):
        out = RPReLU(BN(RPC_s(BA(x))) + shortcut(x))    shortcut: identity, or AvgPool 2x2 -> Conv1x1 -> BN
        BA(x)_c = b_c - m_c,  b = sign(x + t)           t: learnable shifts; m_c: the mean of b_c

    RPC_1 (C -> C'): SpaceToDepth(2) -> BinaryConv1x1 4C -> 4C' -> DepthToSpace(2)
    RPC_2 (C -> C'): SpaceToDepth(2) -> BinaryConv1x1 4C -> C'          (a 2x2 stride-2 conv)

What the paper says (its abstract: Liu et al., IEEE TCSVT 32(9):6414-6424, 2022, DOI
10.1109/TCSVT.2022.3166803): the reshaped point-wise convolution
(RPC) moves spatial information into depth and convolves point-wise, "at least 2.25x" cheaper than a 3x3
conv; the balanced activation (BA) adjusts the distribution of the scaled activations after
binarization; ResNet-18 backbone. RPC's cost: a 2x2 cell becomes one pixel of 4C channels, so a 1x1 conv
4C -> 4C' on (H/2)(W/2) pixels costs 4HWCC' MACs against 9HWCC' for a 3x3 conv: 9/4 = 2.25. (Its kernel
has 16CC' binary weights against 9CC': RPC trades weights for MACs.)

The paper is closed access; everything below is our assumption:

- BA (formula not retrieved; the abstract: it "adjusts the distribution of the scaled activations after
  binarization"): b_c = sign(x_c + t_c) with a learnable shift t_c (the threshold -t_c, ReActNet's RSign,
  arXiv 2003.03488, eq. 1; ApproxSign's gradient), then every channel is centred after the sign,
  BA(b)_c = b_c - m_c, m_c the mean of b_c over the batch's pixels in training (the gradient goes through
  m_c as through BN's centring, then through ApproxSign's STE) and a running mean (PyTorch's momentum
  rule, 0.1) in evaluation. A channel at +1 on 90% of its pixels then carries +0.2 / -1.8, not +1 / -1:
  the two values balance around 0, and the rare sign weighs more.
- The centring keeps the conv on packed bits: a conv is linear, so conv(b - m)_o = conv(b)_o -
  alpha_o sum_{k,c} sign(W)_{o,k,c} m_c, the XNOR-popcount of b minus one constant per output channel
  (:func:`centred_conv`). Padding taps are centred like the pixels (RPC's +1 rows and columns on odd maps
  hold 1 - m_c, the 3x3 reference's zeros -m_c), which keeps that constant the same at every output pixel;
  centring before the padding would change it at border cells. The float model subtracts the constant
  after the binary conv in float32, and packed inference does the same subtraction in the conv's fused
  steps, so the two agree bit for bit.
- Not modelled: a learnable scale after the sign, s_c (b_c - m_c). One per *input* channel weighs the
  channels inside the XNOR-popcount sum differently, which one popcount cannot compute (the effective
  weights s_c sign(W) are no longer binary); one per output channel is the following BN's gamma.
- Crossing the 2x2 cells: an RPC output sees only its own cell, so the second RPC of every basic block
  uses cells shifted by one pixel (down and right). On even maps this is a cyclic shift (the cost stays
  exactly 4/9 of a 3x3 conv; the wrap-around cell pairs opposite borders, which on FashionMNIST are mostly
  background); on odd maps (7x7) the map is padded to even size with one row and column of +1 (a sign
  value), at the bottom/right for unshifted cells and at the top/left for shifted ones. Stride-2 RPCs are
  never shifted, so their cells coincide with the 2x2 average-pool windows of the shortcut. The 7x7
  padding makes those layers 1.72x (not 2.25x) cheaper than a 3x3 conv, so the whole default network is
  about 2.1x cheaper.
- Backbone details as in Bi-Real Net (the ResNet-18 BNN the paper compares with): real stem, classifier and
  1x1 downsampling shortcuts; sign with ApproxSign's gradient; weight scale mean|W_o| with the clipped STE.
- A non-linearity after every residual addition, ReActNet's RPReLU (arXiv 2003.03488 eq. 2): without one
  the unit is linear between signs, which FTBNN (arXiv 2010.09294, abstract) shows costs a binary network
  its discriminative power; which non-linearity RB-Net uses was not retrieved.

``conv="3x3"`` builds the same network with binary 3x3 convs in place of RPC (the cost reference).
Scaled down for FashionMNIST: three stages instead of four, widths 32-128 instead of 64-512.
"""

import numpy as np

import numbnn.functional as F
from numbnn.errors import InputError
from numbnn.models.cost import CostExtra, LayerCost
from numbnn.models.cost.records import FLOAT32_BYTES
from numbnn.models.registry import register_model
from numbnn.nn import BatchNorm, BinaryConv2d, Conv2d, Linear, Module, RPReLU, RSign, Sequential, norm_add_activation
from numbnn.models.arguments import positive_ints
from numbnn.models.layout import BINARY_RECIPE, resnet_stages

CONV_KINDS = ("rpc", "3x3")


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



class BalancedActivation(RSign):
    """BA (module docstring): an RSign, b = sign(x + t), whose bits are then centred, b_c - m_c. Returns
    ``(x + t, m)``: the binary conv binarizes x + t itself on packed bits (after the RPC's cell
    reshaping, so the sum, not a :class:`~numbnn.nn.quantizers.SignInput`) and :func:`centred_conv`
    subtracts m's share.

    m: the mean of b over N, H, W (training; the running mean moves by ``momentum``), else the running mean.
    b's sign is RSign's ApproxSign, as the RPCs' binary convs use (``act_quantizer="approx"``).
    """

    def __init__(self, channels: int, momentum: float = 0.1):
        super().__init__(channels)
        self.channels, self.momentum = channels, float(momentum)
        self.register_buffer("running_mean", np.zeros(channels, np.float32))

    def forward(self, x):
        shifted = x + self.bias
        if not self.training:
            return shifted, self.running_mean
        mean = F.sign_mean(shifted, self.quantizer, self.clip)  # the signs' mean without writing them
        self.running_mean *= 1 - self.momentum
        self.running_mean += self.momentum * mean.data
        return shifted, mean

    def extra_repr(self) -> str:
        return f"{self.channels}, momentum={self.momentum}"


def centred_conv(conv: BinaryConv2d, x, mean):
    """conv(sign(x) - m) = conv(sign(x)) - alpha_o sum_{k,c} w_{o,k,c} m_c, sign(x) on packed bits.

    ``mean``: m, one value per input channel of ``conv`` (groups=1); w: the conv's weight values
    (sign(W) with its STE, or W in step 1 of the two-step recipe). Padding taps are centred too, so the
    correction is one constant per output channel (module docstring).
    """
    correction = conv.weight_values().sum(axis=(1, 2)) @ mean
    alpha = conv.alpha()
    # added as a negative: Add's backward passes the gradient on, Sub's would negate a full-size copy
    return conv(x) + -(correction if alpha is None else correction * alpha)


def _crop(x, axis: int, start: int, size: int):
    index = [slice(None)] * 4
    index[axis] = slice(start, start + size)
    return x[tuple(index)]


def align_cells(x, shifted: bool):
    """Rearrange NHWC ``x`` so 2x2 cells tile it, their grid starting at pixel 0 (or 1 if ``shifted``).

    Returns ``(x_aligned, restore)`` where ``restore`` maps a same-shaped result back onto x's pixels
    (see the module docstring: cyclic shift on even sizes, +1 padding on odd ones).
    """
    undo = []
    for axis in (1, 2):
        size = x.shape[axis]
        if size % 2 == 0 and shifted:
            x = F.roll(x, -1, axis)  # out[i] = x[i + 1], wrapping around
            undo.append(lambda y, axis=axis: F.roll(y, +1, axis))
        elif size % 2 == 1:
            before = 1 if shifted else 0
            widths = [(0, 0)] * 4
            widths[axis] = (before, 1 - before)
            x = F.pad(x, widths, value=1.0)
            undo.append(lambda y, axis=axis, before=before, size=size: _crop(y, axis, before, size))

    def restore(y):
        for step in reversed(undo):
            y = step(y)
        return y

    return x, restore


class ReshapedPointwiseConv(Module):
    """RPC: SpaceToDepth(2) -> binary 1x1 conv -> DepthToSpace(2) (stride 1) or not (stride 2)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shifted: bool = False,
                 binary_weights: bool = True):
        if stride not in (1, 2):
            raise InputError(f"an RPC's stride must be 1 or 2, got {stride!r}")
        if stride == 2 and shifted:
            raise InputError("a strided RPC keeps its cells on the shortcut's pooling windows (shifted=False)")
        self.stride, self.shifted = stride, shifted
        conv_out = 4 * out_channels if stride == 1 else out_channels
        self.conv = BinaryConv2d(4 * in_channels, conv_out, 1, act_quantizer="approx", binarize_weights=binary_weights)

    def forward(self, x, mean):
        """conv(sign(x) - mean) on 2x2 cells; ``mean``: BA's m, one value per channel of x."""
        x, restore = align_cells(x, self.shifted)
        # space_to_depth's channel (dy*2 + dx)*C + c holds channel c: m repeats four times
        y = centred_conv(self.conv, F.space_to_depth(x, 2), F.concat([mean] * 4))
        return restore(F.depth_to_space(y, 2)) if self.stride == 1 else y

    def extra_repr(self) -> str:
        return f"stride={self.stride}" + (", shifted=True" if self.shifted else "")


class BinaryUnit(Module):
    """RPReLU(BN(conv(BA(x))) + shortcut(x)), conv an RPC (or a binary 3x3 conv for ``conv="3x3"``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, conv: str, shifted: bool,
                 binary_weights: bool = True):
        self.balance = BalancedActivation(in_channels)
        if conv == "rpc":
            self.conv = ReshapedPointwiseConv(in_channels, out_channels, stride, shifted, binary_weights)
        else:
            self.conv = BinaryConv2d(in_channels, out_channels, 3, stride=stride, padding=1, act_quantizer="approx",
                                     binarize_weights=binary_weights)
        self.norm = BatchNorm(out_channels)
        changes_shape = stride != 1 or in_channels != out_channels
        self.shortcut = DownsampleShortcut(in_channels, out_channels, stride) if changes_shape else None
        self.activation = RPReLU(out_channels)

    def forward(self, x):
        shifted, mean = self.balance(x)
        if isinstance(self.conv, ReshapedPointwiseConv):
            out = self.conv(shifted, mean)
        else:
            out = centred_conv(self.conv, shifted, mean)
        # RPReLU(BN(out) + shortcut(x)) as one fused op
        return norm_add_activation(self.norm, out, self.shortcut(x) if self.shortcut is not None else x, self.activation)


class BasicBlock(Sequential):
    """ResNet-18's basic block as two :class:`BinaryUnit`; the second one's RPC cells are shifted by a pixel."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, conv: str, binary_weights: bool = True):
        super().__init__(BinaryUnit(in_channels, out_channels, stride, conv, shifted=False, binary_weights=binary_weights),
                         BinaryUnit(out_channels, out_channels, 1, conv, shifted=True, binary_weights=binary_weights))


@register_model(
    "rbnet",
    summary="RB-Net: Bi-Real ResNet with reshaped point-wise convs (RPC) and balanced activations (BA)",
    paper="RB-Net, Liu et al. (IEEE TCSVT 2022)",
)
class RbNet(Module):
    """See the module docstring. ``widths``/``blocks``: per stage; ``conv``: "rpc" or "3x3" (the reference);
    ``binary_weights``: False for step 1 of the two-step recipe (real weights, binary activations)."""

    def __init__(self, widths=(32, 64, 128), blocks=(2, 2, 2), conv: str = "rpc", num_classes: int = 10,
                 in_channels: int = 1, binary_weights: bool = True):
        widths, blocks = positive_ints(widths, "widths"), positive_ints(blocks, "blocks")
        if not widths or len(widths) != len(blocks) or min(blocks) < 1:
            raise InputError(f"widths and blocks need one entry per stage (blocks >= 1), got {widths} and {blocks}")
        if conv not in CONV_KINDS:
            raise InputError(f"conv must be one of {CONV_KINDS}, got {conv!r}")
        self.stem = Conv2d(in_channels, widths[0], 3, stride=2, padding=1)
        self.stem_norm = BatchNorm(widths[0])
        self.blocks, channels = resnet_stages(
            widths, blocks, widths[0], lambda c_in, c_out, stride: BasicBlock(c_in, c_out, stride, conv, binary_weights))
        self.classifier = Linear(channels, num_classes)

    @classmethod
    def default_recipe(cls) -> dict:
        """The shared binary recipe (:data:`~numbnn.models.layout.BINARY_RECIPE`); RB-Net's own recipe was not retrieved."""
        return dict(BINARY_RECIPE)

    def cost_extra(self) -> CostExtra:
        """BA's centring in the packed export: one float32 constant per binary conv output channel
        (:func:`centred_conv`), which no parameter of the model holds."""
        channels = sum(m.out_channels for m in self.modules() if isinstance(m, BinaryConv2d))
        return CostExtra(rows=[LayerCost("ba_centring", "constant", packed_size_bytes=FLOAT32_BYTES * channels)])

    def forward(self, x):
        x = self.stem_norm(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return self.classifier(F.global_avg_pool(x))
