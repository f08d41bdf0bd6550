"""``pokebnn``: PokeBNN (Zhang, Zhang, Lew, "PokeBNN: A Binary Pursuit of Lightweight Accuracy",
arXiv 2112.00133), scaled for 28x28 inputs. Module details follow the public google/aqt code
(``aqt/jax_legacy/jax/imagenet/pokebnn.py``, its config ``configs/pokebnn/pokebnn_config.py`` and the
binarisation in ``aqt/jax_legacy/jax/{primitives,quantization}.py``).

Block diagram (NHWC; defaults ``widths=(32, 64, 128)``, ``blocks=(1, 1, 1)``, ``clip=3.0``)::

    x [N,28,28,1]
    -> PokeInit:  Conv 2x2 stride 2, 1->16 -> BN -> DPReLU           no input pixel is used twice; 28 -> 14
                  Conv 3x3, 16->32, 16 groups -> BN -> DPReLU         both convs int8 (weights and inputs)
    -> Bottleneck f=32, stride 1   14x14   (out 128)
    -> Bottleneck f=64, stride 2    7x7    (out 256)
    -> Bottleneck f=128, stride 2   4x4    (out 512)
    -> global average pool -> Linear 512->10, int8

    Bottleneck(x; f, s):  PokeConv(1x1, f) -> PokeConv(3x3, f, stride s) -> PokeConv(1x1, 4f; r1 = x)

    PokeConv(x -> C', stride s; optional bottleneck input r1):
        y = BN(BinaryConv(x))                    BN gamma starts at 0 in a bottleneck's third conv
        y = y + local(x)                         channels: zero-padded growth, shrink by averaging groups
                                                 of consecutive channels; AvgPool 3x3/2 SAME when strided
        y = y + tiled(r1)                        third conv only: r1's channels tiled up to C'
        y = DPReLU(y) * SE(x)                    SE(x) = hard_sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2),
                                                 W1: C -> C/8 on int4 inputs, W2: -> C' on uint4 inputs
        out = BN(y)

There are no projection (conv) shortcuts: every shortcut is parameter-free, as in the paper.

Binarization and the clipping bound B (``clip``). PokeBNN's activation quantizer outputs +-B/2 (AQT:
floor(clip(x/B)) + 0.5, times B) and its weight quantizer +-max|W_o|/2, so its binary conv computes
(B/2)(max|W_o|/2) conv(sign(x), sign(W)): the integer XNOR-popcount result times a positive
per-output-channel constant. The BN that follows every binary conv removes such a scale exactly (up to BN's
eps), so numbnn's binary convs keep +-1 values, which keeps the packed kernels exact, and use no scale.
B then acts only where AQT lets it act in the backward pass: the activation gradient passes where
|x| <= B (the STE window), and the weight gradient passes everywhere (AQT's weight bound is max|W|).

Per-channel bounds (``clip_per_channel=True``; off by default). AQT's PokeBNN config gives the binary
convs' activation bound ``granularity="per_channel"`` but ``fixed_bound=3.0`` with every statistic's
coefficient 0 (``configs/pokebnn/pokebnn_config.py``, ``set_init_bound_coeff``; the formula in
``get_bounds.py``, ``_stats_to_bounds``), so B_c = 3.0 in every channel: the scalar default is what that
code computes. Its bounds are not learned (the quantizer's scale is under ``stop_gradient``), and B_c
that differed between channels would weight input channel c by B_c/2 inside AQT's dot product, which one
XNOR-popcount cannot compute. So the option keeps the forward a sign and varies only the STE window:
the gradient passes where |x_c| <= B_c = B sqrt(s_c), s_c the running mean of x_c^2 (AQT's uncentred
standard deviation statistic, per channel, EMA coefficient 0.1; :class:`ChannelBound`). A channel fresh
out of a BN has s_c = 1, where the option equals the scalar B.

Scaled down for FashionMNIST and our assumptions:
- PokeInit for one 28x28 channel: 2x2 stride-2 conv 1->16 (ImageNet: 4x4 stride 4, 3->32), grouped 3x3 16->32
  with 16 groups (ImageNet: 32->64, 32 groups); three bottleneck stages of one block, f = 32-64-128
  (ImageNet: four stages of 3-4-6-3 blocks, f = 64-512), 14 -> 7 -> 4.
- Fake-quantization: weights symmetric with a per-output-channel bound max|W_o|; inputs symmetric (unsigned
  after the SE's ReLU) with one bound per tensor, the batch mean of each image's max |x| in training, kept
  as an exponential moving average for evaluation. AQT's code differs: its stem, SE and head bounds are
  per channel (the max of channel c over a batch, averaged with EMA coefficient 0.1), the layers run
  unquantized until step 7500 and the bounds are then set once (``activation_bound_start_step``,
  ``activation_bound_update_freq=-1``).
- AQT's real-valued weights for the first 50 of 800 epochs (a warm-up) is ``--recipe two-step`` with
  ``--step1-epochs``: step 1 trains with ``binary_weights=False``, step 2 binarizes the carried-over
  weights. Not modelled: the 8-bit ResNet-50 teacher (``numbnn train --teacher`` takes any checkpoint).
"""

import math

import numpy as np

import numbnn.functional as F
from numbnn.errors import InputError
from numbnn.models.registry import register_model
from numbnn.nn import BatchNorm, BinaryConv2d, Conv2d, DPReLU, Linear, Module, ModuleList, SignInput, norm_add_activation
from numbnn.models.arguments import positive_ints
from numbnn.models.layout import BINARY_RECIPE

SE_RATIO = 8


class RunningBoundQuant(Module):
    """Fake-quantize to ``bits`` bits on [-b, b] (or [0, b] if not ``signed``) with a data-driven bound b.

    Training: b = mean over the batch of each image's max |x|, and ``running_bound`` follows it with
    momentum ``momentum`` (set outright on the first batch). Evaluation: b = ``running_bound``.
    """

    def __init__(self, bits: int, signed: bool = True, momentum: float = 0.1):
        self.bits, self.signed, self.momentum = bits, bool(signed), float(momentum)
        self.act_bits = bits
        self.register_buffer("running_bound", np.zeros(1, np.float32))

    def forward(self, x):
        if self.training:
            per_image = np.abs(x.data).reshape(x.shape[0], -1).max(axis=1)
            bound = float(per_image.mean())
            old = float(self.running_bound[0])
            self.running_bound[0] = bound if old == 0 else (1 - self.momentum) * old + self.momentum * bound
        else:
            bound = float(self.running_bound[0])
        return F.fake_quant(x, self.bits, max(bound, 1e-6), self.signed)

    def extra_repr(self) -> str:
        return f"bits={self.bits}" + ("" if self.signed else ", signed=False")


def quantized_weight(weight, bits: int):
    """Symmetric ``bits``-bit fake quantization of a weight, bound max|W_o| per output channel (first axis)."""
    bound = np.abs(weight.data).reshape(weight.shape[0], -1).max(axis=1)
    bound = np.maximum(bound, 1e-8).reshape((-1,) + (1,) * (len(weight.shape) - 1)).astype(weight.data.dtype)
    return F.fake_quant(weight / bound, bits, 1.0) * bound


class QuantConv2d(Conv2d):
    """Conv2d on ``bits``-bit fake-quantized inputs and weights (PokeInit's int8 convs)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, groups: int = 1,
                 bits: int = 8):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, groups=groups)
        self.input_quant = RunningBoundQuant(bits)
        self.weight_bits = self.act_bits = bits

    def forward(self, x):
        w = quantized_weight(self.weight, self.weight_bits)
        return F.conv2d(self.input_quant(x), w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class QuantLinear(Linear):
    """Linear on ``bits``-bit fake-quantized inputs (unsigned if not ``signed``) and weights (SE and head).

    The bias starts at 0 (Flax's default, which the AQT code uses): a random negative bias can leave the
    SE's few hidden ReLU units dead for every image from the start.
    """

    def __init__(self, in_features: int, out_features: int, bits: int, signed: bool = True):
        super().__init__(in_features, out_features)
        self.bias.data[:] = 0
        self.input_quant = RunningBoundQuant(bits, signed)
        self.weight_bits = self.act_bits = bits

    def forward(self, x):
        return F.linear(self.input_quant(x), quantized_weight(self.weight, self.weight_bits), self.bias)


class PokeInit(Module):
    """The stem: Conv 2x2/2 -> BN -> DPReLU -> grouped Conv 3x3 -> BN -> DPReLU, int8 (module docstring)."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int):
        self.patchify = QuantConv2d(in_channels, mid_channels, 2, stride=2)
        self.patchify_norm = BatchNorm(mid_channels)
        self.patchify_act = DPReLU(mid_channels)
        self.grouped = QuantConv2d(mid_channels, out_channels, 3, padding=1, groups=mid_channels)
        self.grouped_norm = BatchNorm(out_channels)
        self.grouped_act = DPReLU(out_channels)

    def forward(self, x):
        x = self.patchify_act(self.patchify_norm(self.patchify(x)))
        return self.grouped_act(self.grouped_norm(self.grouped(x)))


def reshape_shortcut(r, channels: int, stride: int, growth: str):
    """PokeBNN's parameter-free shortcut: r resized to ``channels`` channels and to the conv's stride.

    Spatial: AvgPool 3x3 stride 2 SAME when ``stride`` is 2. Channels: growth by zero padding
    (``growth="zeros"``, the local shortcut) or by tiling r (``"tile"``, the bottleneck shortcut); shrink by
    averaging groups of consecutive channels.
    """
    if stride != 1:
        r = F.avg_pool2d(r, 3, stride, "same")
    have = r.shape[-1]
    if channels > have:
        if growth == "zeros":
            return F.pad(r, ((0, 0), (0, 0), (0, 0), (0, channels - have)))
        return F.concat([r] * (channels // have), axis=-1)
    if channels < have:
        n, h, w, _ = r.shape
        return r.reshape(n, h, w, channels, have // channels).mean(axis=-1)
    return r


def _check_resizable(have: int, want: int, growth: str, what: str):
    if (want < have and have % want) or (want > have and growth == "tile" and want % have):
        raise InputError(f"the {what} shortcut cannot resize {have} channels to {want} (need a whole multiple)")


class SqueezeExcite(Module):
    """SE gate from the block input: hard_sigmoid(W2 relu(W1 mean_hw(r) + b1) + b2), int4 / uint4 inputs."""

    def __init__(self, in_channels: int, out_channels: int):
        hidden = max(1, in_channels // SE_RATIO)
        self.squeeze = QuantLinear(in_channels, hidden, bits=4, signed=True)
        self.excite = QuantLinear(hidden, out_channels, bits=4, signed=False)

    def forward(self, r):
        """The gate [N, C] (applied by :func:`numbnn.functional.channel_gate`)."""
        s = F.relu(self.squeeze(F.global_avg_pool(r)))
        return F.hard_sigmoid(self.excite(s))


class ChannelBound(Module):
    """Per-channel STE bounds B_c = B sqrt(s_c) for a binary conv's input (``clip_per_channel``; module docstring).

    s_c: the mean of x_c^2 over a batch's pixels, followed as an exponential moving average with
    momentum ``momentum`` (AQT's ``ema_coeff``; set outright on the first batch) in training, as stored
    in evaluation. The bounds only set the sign's gradient window: evaluation never depends on them.
    """

    def __init__(self, channels: int, clip: float, momentum: float = 0.1):
        self.clip, self.momentum = float(clip), float(momentum)
        self.register_buffer("running_mean_square", np.zeros(channels, np.float32))

    def forward(self, x) -> np.ndarray:
        if self.training:
            data = x.data.reshape(-1, x.shape[-1]).astype(np.float64)
            square = np.mean(data * data, axis=0)
            running = self.running_mean_square
            running[:] = square if not running.any() else (1 - self.momentum) * running + self.momentum * square
        return self.clip * np.sqrt(np.maximum(self.running_mean_square.astype(np.float64), 1e-12))

    def extra_repr(self) -> str:
        return f"{self.running_mean_square.shape[0]}, clip={self.clip}"


class PokeConv(Module):
    """BN(BinaryConv(x)) + local(x) [+ tiled(r1)] -> DPReLU -> x SE(x) -> BN (module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, clip: float,
                 bottleneck_input: tuple[int, int] | None = None, binary_weights: bool = True,
                 clip_per_channel: bool = False):
        _check_resizable(in_channels, out_channels, "zeros", "local")
        self.stride = stride
        self.conv = BinaryConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                                 scale=None, act_quantizer="ste", act_clip=clip, weight_clip=math.inf,
                                 binarize_weights=binary_weights)
        self.bound = ChannelBound(in_channels, clip) if clip_per_channel else None
        self.norm = BatchNorm(out_channels, gamma_init=0.0 if bottleneck_input is not None else 1.0)
        # (channels, stride) of the bottleneck input r1, for the third conv of a bottleneck only
        self.bottleneck_input = bottleneck_input
        if bottleneck_input is not None:
            _check_resizable(bottleneck_input[0], out_channels, "tile", "bottleneck")
        self.activation = DPReLU(out_channels)
        self.excite = SqueezeExcite(in_channels, out_channels)
        self.out_norm = BatchNorm(out_channels)

    def forward(self, x, block_input=None):
        channels = self.conv.out_channels
        signs = x if self.bound is None else SignInput(x, self.conv.quantizer, self.bound(x))
        local = reshape_shortcut(x, channels, self.stride, "zeros")
        if self.bottleneck_input is None:  # DPReLU(BN(conv) + local(x)) as one fused op
            y = norm_add_activation(self.norm, self.conv(signs), local, self.activation)
        else:  # (BN(conv) + local(x)) + tiled(r1): two residual adds in this order, left unfused
            y = self.norm(self.conv(signs)) + local
            y = self.activation(y + reshape_shortcut(block_input, channels, self.bottleneck_input[1], "tile"))
        return self.out_norm(F.channel_gate(y, self.excite(x)))


class Bottleneck(Module):
    """PokeConv 1x1 (f) -> PokeConv 3x3 (f, stride) -> PokeConv 1x1 (4f), the last one also adding the block input."""

    def __init__(self, in_channels: int, width: int, stride: int, clip: float, binary_weights: bool = True,
                 clip_per_channel: bool = False):
        options = {"binary_weights": binary_weights, "clip_per_channel": clip_per_channel}
        self.reduce = PokeConv(in_channels, width, 1, 1, clip, **options)
        self.spatial = PokeConv(width, width, 3, stride, clip, **options)
        self.expand = PokeConv(width, 4 * width, 1, 1, clip, bottleneck_input=(in_channels, stride), **options)

    def forward(self, x):
        return self.expand(self.spatial(self.reduce(x)), x)


@register_model(
    "pokebnn",
    summary="PokeBNN: PokeInit stem, bottlenecks of PokeConvs (shortcuts, DPReLU, SE), clip bound B",
    paper="PokeBNN, Zhang, Zhang, Lew (arXiv 2112.00133)",
)
class PokeBnn(Module):
    """See the module docstring. ``widths``: f per stage; ``blocks``: bottlenecks per stage; ``clip``: B;
    ``clip_per_channel``: one bound B_c per input channel of every binary conv (:class:`ChannelBound`);
    ``stem_widths``: PokeInit's two conv widths; ``binary_weights``: False for real weights (AQT's
    warm-up, and step 1 of the two-step recipe)."""

    def __init__(self, widths=(32, 64, 128), blocks=(1, 1, 1), clip: float = 3.0, stem_widths=(16, 32),
                 num_classes: int = 10, in_channels: int = 1, binary_weights: bool = True,
                 clip_per_channel: bool = False):
        widths, blocks = positive_ints(widths, "widths"), positive_ints(blocks, "blocks")
        stem_widths = positive_ints(stem_widths, "stem_widths")
        if not widths or len(widths) != len(blocks) or min(blocks) < 1:
            raise InputError(f"widths and blocks need one entry per stage (blocks >= 1), got {widths} and {blocks}")
        if len(stem_widths) != 2 or stem_widths[1] % stem_widths[0]:
            raise InputError(f"stem_widths must be two widths, the second a multiple of the first, got {stem_widths}")
        if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not 0 < clip < math.inf:
            raise InputError(f"clip (the bound B) must be a positive number, got {clip!r}")
        self.clip = float(clip)
        self.stem = PokeInit(in_channels, *stem_widths)
        stages, channels = [], stem_widths[1]
        for index, (width, count) in enumerate(zip(widths, blocks)):
            for block in range(count):
                stride = 2 if index > 0 and block == 0 else 1
                stages.append(Bottleneck(channels, width, stride, self.clip, binary_weights, bool(clip_per_channel)))
                channels = 4 * width
        self.blocks = ModuleList(stages)
        self.classifier = QuantLinear(channels, num_classes, bits=8)

    @classmethod
    def default_recipe(cls) -> dict:
        """The shared binary recipe (:data:`~numbnn.models.layout.BINARY_RECIPE`) with PokeBNN's own Adam
        beta2 = 0.99 and L2 5e-5 on every parameter with ndim > 1 (google/aqt,
        ``aqt/jax_legacy/jax/imagenet/configs/pokebnn/pokebnn_config.py``). The paper's lr (2e-5 per 256
        images, 800 epochs at batch 8192) is tuned for ImageNet; the shared recipe's lr is used instead."""
        return {**BINARY_RECIPE, "beta2": 0.99, "weight_decay": 5e-5, "decay_rule": "ndim>1"}

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.classifier(F.global_avg_pool(x))
