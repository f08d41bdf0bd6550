"""A PyTorch twin of every registered numbnn model: same network, same weights, same logits, timed side by side.

Usage::

    python3 benchmarks/torch_twin.py --model reactnet-a [--batch-sizes 64,128] [--threads 2] [--json]
    python3 benchmarks/torch_twin.py --all --json          # every registered model (``numbnn models --json``)
    python3 benchmarks/torch_twin.py --model reactnet-a --packed --no-train   # packed inference vs PyTorch eval

What the twin is. :func:`build_twin` walks a numbnn model's module tree and builds, module for module,
the float-simulated PyTorch network a PyTorch user would write for it (NCHW activations, OIHW weights):

- every *layer* class (``LAYERS`` below: convolutions, binary convolutions as a float ``conv2d`` of
  sign(x) and sign(W) times alpha = mean|W_o| with the STEs as ``autograd.Function``, batch norm,
  RSign, RB-Net's balanced activation, RPReLU, DPReLU/FPReLU, PReLU, ReLU, hard sigmoid, channel
  shuffle, pooling, fake quantization, space/depth rearrangements, linear layers) maps to one torch module whose
  parameters carry the numbnn parameter names, so the state dicts line up key for key;
- every *block* class (``BLOCKS`` below), whose ``forward`` wires its children (residual additions,
  channel duplication, shortcuts, SE gates, PokeBNN's data-driven quantization bounds), has a small
  translation of that ``forward`` in this file, keyed by the numbnn class and written against the
  twin's children of the same names. Blocks are shared by models (``Sequential``, ``ModuleList``, a
  subclass such as ReActXGB finds ReActNet-A's entry through its class hierarchy), so the table holds
  one entry per block type, not one network per model. A class with no entry is an error that names it.

Each translation follows the numbnn ``forward`` it mirrors line by line (the model files in
``numbnn/models/`` and the ops in ``numbnn/functional/``): TensorFlow-"same" average pooling that
counts real pixels only, ShuffleNet's channel order, TensorFlow's space_to_depth channel order (not
``pixel_unshuffle``'s), NHWC flattening before a flat classifier, PokeBNN's batch-mean-of-max bounds.
:func:`copy_weights` converts numbnn's state dict (OHWI -> OIHW) into the twin's; :func:`agreement`
compares logits on a fixed batch of 32 images, in training mode (batch statistics) and in evaluation
mode (running statistics, set to non-trivial values first), with both networks in float64, where they
agree to ~1e-14 (the check: < 1e-4), and reports the float32 differences (rounding near a sign or a
quantization step; see :func:`agreement`) and the float64 gradients' agreement for information.

Timing (``--json`` prints one object per model): for each batch size, numbnn's training step
(:class:`numbnn.bench.train.TrainStep`: the model's recipe, forward, loss, backward, optimizer) and
the twin's (the same optimizer, learning rate, betas, weight decay rule, label smoothing and gradient
clipping, on the same batches, ``torch.set_num_threads`` = numbnn's threads) in both memory formats,
NCHW and channels_last, the faster one counting. Then an eval pass (``no_grad`` / ``inference_mode``;
``--packed`` adds numbnn's packed model). Each library times in processes of its own, never beside the
other: numbnn in ``benchmarks/numbnn_contender.py`` (which never imports torch), the twin in this script
run with ``--contender``. PyTorch and Numba both use the system's GNU libgomp, which reads its waiting
settings once, at load; in one process the first import decides both libraries' waiting, and two pools
of threads on as many cores are more threads than cores, for which libgomp's documentation of
GOMP_SPINCOUNT says it cuts spinning to 100 rounds (before 2026-12-05 this script set OMP_WAIT_POLICY=PASSIVE for both,
which slowed the twin by a third: reactnet-a at batch 64, 151 s against 103 s an epoch). Each of
``--rounds`` rounds runs numbnn's process, then the twin's, each taking the median of ``--steps`` steps
after ``--warmup + 1`` untimed ones, so a change in machine load hits both alike; the medians of the
rounds give the figures. ``epoch_ratio`` is numbnn's epoch time over the faster twin's (below 1: numbnn
is faster), from wall time; ``epoch_ratio_cpu`` the same from process CPU time. The 1-minute load
average before and after is printed, and before each round this process times a 64 MB numpy copy
(``memory_copy_gbs``): the machine's speed drifts within minutes, numbnn's memory-bound steps more than
the twins', so a run's rounds can be read against it. On a shared machine only ratios taken in one run
mean anything. A phase whose numbnn or twin rounds differ by more than ``UNSTEADY_SPREAD`` (slowest
over fastest) is marked ``unsteady`` with each contender's spread, and its summary line says so: on the
development machine whole rounds of numbnn have fallen into spells 2-20x slower than the rounds beside
them (docs/performance.md, 2026-12-07 night), which a median of three rounds does not always outvote.

torch is a benchmark-only extra (``pip install -e '.[bench]'``); nothing under ``numbnn/`` imports it.
"""

from __future__ import annotations

import os

USER_ENVIRONMENT = dict(os.environ)  # before numbnn's import adds its OpenMP setting (see run_contender)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402
from torch import nn  # noqa: E402

import numbnn.nn as nb  # noqa: E402
from numbnn.autograd import Tensor, no_grad  # noqa: E402
from numbnn.bench.train import EPOCH_IMAGES, TrainStep, median_step_seconds, synthetic_batches  # noqa: E402
from numbnn.functional.quantizers import quantization_grid  # noqa: E402
from numbnn.kernels.platform import cpu_model  # noqa: E402
from numbnn.models import available_models, build_model  # noqa: E402
from numbnn.models.cost import summarize  # noqa: E402
from numbnn.models import bnn_small, float_cnn, ftbnn, pokebnn, rbnet, reactnet, resnet  # noqa: E402
from numbnn.optim import split_decay  # noqa: E402
from numbnn.threads import set_threads  # noqa: E402

HERE = Path(__file__).resolve().parent

TOLERANCE = 1e-4  # max abs logit difference accepted as "the same network"
CHECK_IMAGES = 32


# --------------------------------------------------------------------------------------------------------
# Straight-through estimators and the element-wise ops numbnn.functional defines
# --------------------------------------------------------------------------------------------------------
def sign(x):
    """+1 where x >= 0 else -1 (sign(0) = +1, numbnn's convention)."""
    return torch.where(x < 0, -1.0, 1.0).to(x.dtype)


class SteSign(torch.autograd.Function):
    """sign(x); gradient passed where |x| <= clip, a number or one bound per channel (numbnn.functional.sign)."""

    @staticmethod
    def forward(ctx, x, clip):
        ctx.save_for_backward(x)
        ctx.clip = per_channel(clip, x) if torch.is_tensor(clip) else clip
        return sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= ctx.clip).to(grad.dtype), None


class ApproxSign(torch.autograd.Function):
    """sign(x); gradient times max(0, 2 - 2|x|) (Bi-Real Net's ApproxSign, numbnn.functional.approx_sign)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.clamp(2.0 - 2.0 * x.abs(), min=0.0)


class FakeQuant(torch.autograd.Function):
    """step * round(clip(x, lo, hi) / step), gradient passed inside [lo, hi] (numbnn.functional.fake_quant)."""

    @staticmethod
    def forward(ctx, x, lo, hi, step):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return torch.round(torch.clamp(x, lo, hi) / step) * step

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ((x >= ctx.lo) & (x <= ctx.hi)).to(grad.dtype), None, None, None


def fake_quant(x, bits: int, bound: float, signed: bool = True):
    lo, hi, step = quantization_grid(bits, bound, signed)
    if x.dtype == torch.float32:
        step = float(np.float32(step))  # numbnn divides by the step in x's dtype
    return FakeQuant.apply(x, lo, hi, step)


def quantize_activation(x, quantizer: str, clip: float):
    if quantizer == "approx_sign":
        return ApproxSign.apply(x)
    if quantizer == "ste_sign":
        return SteSign.apply(x, clip)
    return x


def per_channel(p, x):
    """A [C] parameter shaped to broadcast over x's channel axis (1 of NCHW or of [N, C])."""
    return p.view(1, -1, *([1] * (x.dim() - 2)))


def avg_pool(x, kernel_size, stride, padding):
    """numbnn.functional.avg_pool2d: mean of the real pixels of each window; "same" = TensorFlow's rule
    (output ceil(size / stride), the odd padding row after), which is PyTorch's ``ceil_mode`` with the
    smaller half of the padding in front and ``count_include_pad=False``."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    stride = (kh, kw) if stride is None else stride
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    if isinstance(padding, str):
        h, w = x.shape[2], x.shape[3]
        total_h = max((-(-h // sh) - 1) * sh + kh - h, 0)
        total_w = max((-(-w // sw) - 1) * sw + kw - w, 0)
        return TF.avg_pool2d(x, (kh, kw), (sh, sw), (total_h // 2, total_w // 2), ceil_mode=True,
                             count_include_pad=False)
    return TF.avg_pool2d(x, (kh, kw), (sh, sw), padding, count_include_pad=False)


def global_avg_pool(x):
    return x.mean(dim=(2, 3))


def concat_channels(tensors):
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=1)


def pad_channels(x, before: int, after: int, value: float = 0.0):
    return TF.pad(x, (0, 0, 0, 0, before, after), value=value)


def space_to_depth(x, b: int):
    """TensorFlow's order, as numbnn: output channel (dy*b + dx)*C + c holds x[c, y*b + dy, x*b + dx]."""
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(n, b * b * c, h // b, w // b)


def depth_to_space(x, b: int):
    """The inverse of :func:`space_to_depth` (numbnn's DCR order)."""
    n, c, h, w = x.shape
    x = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(n, c // (b * b), h * b, w * b)


def channel_shuffle(x, groups: int):
    """ShuffleNet's shuffle: output channel j*groups + g is input channel g*(C/groups) + j."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def flatten_nhwc(x):
    """numbnn flattens NHWC maps, so a flat classifier's inputs are in (h, w, c) order."""
    return x.permute(0, 2, 3, 1).flatten(1)


# --------------------------------------------------------------------------------------------------------
# Layers: one torch module per numbnn layer class, parameters under numbnn's names ([C] vectors stay [C])
# --------------------------------------------------------------------------------------------------------
def _vector(array) -> nn.Parameter:
    return nn.Parameter(torch.zeros(np.shape(array.data if isinstance(array, Tensor) else array)))


class Twin(nn.Module):
    """A twin module: ``source`` is the numbnn module's class name; ``forward_fn`` its translated forward."""

    def __init__(self, source, forward_fn=None):
        super().__init__()
        self.source = type(source).__name__
        self.forward_fn = forward_fn

    def forward(self, *args):
        return self.forward_fn(self, *args)

    def extra_repr(self) -> str:
        return f"numbnn {self.source}"


def conv_layer(m):
    """Conv2d: torch's own (OIHW weight and optional bias, numbnn's names already)."""
    return nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                     bias=m.bias is not None)


def linear_layer(m):
    return nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)


class BinaryConv2d(nn.Module):
    """alpha_o * conv(q(x), sign(W))_o, alpha = mean|W_o| without gradient (numbnn.nn.BinaryConv2d)."""

    def __init__(self, m):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(m.out_channels, m.in_channels // m.groups, *m.kernel_size))
        self.stride, self.padding, self.dilation, self.groups = m.stride, m.padding, m.dilation, m.groups
        self.pad_value, self.quantizer, self.act_clip = m.pad_value, m.quantizer.name, m.act_clip
        self.weight_clip, self.binarize, self.mean_abs = m.weight_clip, m.binarize_weights, m.scale == "mean_abs"

    def forward(self, x):
        quantizer, clip = self.quantizer, self.act_clip
        if isinstance(x, tuple):  # RSign.before_sign's (x + b, quantizer, clip)
            x, quantizer, clip = x
        x = quantize_activation(x, quantizer, clip)
        padding = self.padding
        if self.pad_value != 0 and padding != (0, 0):
            x = TF.pad(x, (padding[1], padding[1], padding[0], padding[0]), value=float(self.pad_value))
            padding = (0, 0)
        w = SteSign.apply(self.weight, self.weight_clip) if self.binarize else self.weight
        y = TF.conv2d(x, w, None, self.stride, padding, self.dilation, self.groups)
        if self.mean_abs and self.binarize:
            alpha = self.weight.detach().abs().mean(dim=(1, 2, 3))
            y = y * per_channel(alpha, y)
        return y


class BalancedActivation(nn.Module):
    """(x + t, m), m the batch mean of ApproxSign(x + t) per channel or its running mean (numbnn.models.rbnet)."""

    def __init__(self, m):
        super().__init__()
        self.bias, self.momentum = _vector(m.bias), m.momentum
        self.register_buffer("running_mean", torch.zeros(m.channels))

    def forward(self, x):
        shifted = x + per_channel(self.bias, x)
        if not self.training:
            return shifted, self.running_mean
        mean = ApproxSign.apply(shifted).mean(dim=(0, 2, 3))
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
        return shifted, mean


class ChannelBound(nn.Module):
    """B sqrt(s_c), s_c the running mean of x_c^2, updated in training (numbnn.models.pokebnn.ChannelBound)."""

    def __init__(self, m):
        super().__init__()
        self.clip, self.momentum = m.clip, m.momentum
        self.register_buffer("running_mean_square", torch.zeros(m.running_mean_square.shape[0]))

    def forward(self, x):
        running = self.running_mean_square
        if self.training:
            with torch.no_grad():
                square = (x.detach().double() ** 2).mean(dim=(0, 2, 3))
                first = not running.any()
                running.copy_(square if first else (1 - self.momentum) * running.double() + self.momentum * square)
        return self.clip * running.double().clamp(min=1e-12).sqrt()


class BatchNorm(nn.Module):
    """What nn.BatchNorm2d runs (F.batch_norm), with numbnn's parameter names gamma and beta."""

    def __init__(self, m):
        super().__init__()
        self.gamma, self.beta = _vector(m.gamma), _vector(m.beta)
        self.register_buffer("running_mean", torch.zeros(m.channels))
        self.register_buffer("running_var", torch.ones(m.channels))
        self.momentum, self.eps = m.momentum, m.eps

    def forward(self, x):
        return TF.batch_norm(x, self.running_mean, self.running_var, self.gamma, self.beta, self.training,
                             self.momentum, self.eps)


class RSign(nn.Module):
    """q(x + b) (numbnn.nn.RSign); ``before_sign`` hands a binary conv x + b and q (numbnn's SignInput)."""

    def __init__(self, m):
        super().__init__()
        self.bias, self.quantizer, self.clip = _vector(m.bias), m.quantizer.name, m.clip

    def before_sign(self, x):
        return x + per_channel(self.bias, x), self.quantizer, self.clip

    def forward(self, x):
        return quantize_activation(x + per_channel(self.bias, x), self.quantizer, self.clip)


class RPReLU(nn.Module):
    """PReLU_slope(x - gamma) + zeta."""

    def __init__(self, m):
        super().__init__()
        self.gamma, self.slope, self.zeta = _vector(m.gamma), _vector(m.slope), _vector(m.zeta)

    def forward(self, x):
        return TF.prelu(x - per_channel(self.gamma, x), self.slope) + per_channel(self.zeta, x)


class DPReLU(nn.Module):
    """u = x - shift_x; (pos_slope if u >= 0 else neg_slope) * u - shift_y; FPReLU has no shifts."""

    def __init__(self, m):
        super().__init__()
        self.pos_slope, self.neg_slope = _vector(m.pos_slope), _vector(m.neg_slope)
        self.learn_shifts = m.learn_shifts
        if m.learn_shifts:
            self.shift_x, self.shift_y = _vector(m.shift_x), _vector(m.shift_y)

    def forward(self, x):
        u = x - per_channel(self.shift_x, x) if self.learn_shifts else x
        y = torch.where(u >= 0, per_channel(self.pos_slope, u) * u, per_channel(self.neg_slope, u) * u)
        return y - per_channel(self.shift_y, y) if self.learn_shifts else y


class PReLU(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.slope = _vector(m.slope)

    def forward(self, x):
        return TF.prelu(x, self.slope)


class Function(nn.Module):
    """A parameter-free layer: ``fn(x)``."""

    def __init__(self, fn, name: str):
        super().__init__()
        self.fn, self.name = fn, name

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


class RunningBoundQuant(nn.Module):
    """PokeBNN's fake quantization with a batch-mean-of-max bound and its running average (numbnn.models.pokebnn)."""

    def __init__(self, m):
        super().__init__()
        self.bits, self.signed, self.momentum = m.bits, m.signed, m.momentum
        self.register_buffer("running_bound", torch.zeros(1))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                bound = x.abs().flatten(1).amax(dim=1).mean()
                old = self.running_bound[0]
                self.running_bound[0] = bound if old == 0 else (1 - self.momentum) * old + self.momentum * bound
            bound = float(bound)
        else:
            bound = float(self.running_bound[0])
        return fake_quant(x, self.bits, max(bound, 1e-6), self.signed)


def quantized_weight(weight, bits: int):
    """Symmetric ``bits``-bit fake quantization, bound max|W_o| per output channel (pokebnn.quantized_weight)."""
    bound = weight.detach().abs().flatten(1).amax(dim=1).clamp(min=1e-8).view(-1, *([1] * (weight.dim() - 1)))
    return fake_quant(weight / bound, bits, 1.0) * bound


def leaf_layer(m):
    """The torch layer for numbnn layer ``m`` (``LAYERS`` by class, the first match in its class hierarchy)."""
    return _lookup(LAYERS, m)(m)


LAYERS = {
    nb.Conv2d: conv_layer,
    nb.Linear: linear_layer,
    nb.BinaryConv2d: BinaryConv2d,
    nb.BatchNorm: BatchNorm,
    nb.RSign: RSign,
    nb.RPReLU: RPReLU,
    nb.DPReLU: DPReLU,  # also FTBNN's FPReLU (DPReLU without shifts)
    nb.PReLU: PReLU,
    nb.ReLU: lambda m: Function(TF.relu, "relu"),
    nb.HardSigmoid: lambda m: Function(TF.hardsigmoid, "hard_sigmoid"),
    nb.ChannelShuffle: lambda m: Function(lambda x: channel_shuffle(x, m.groups), f"channel_shuffle({m.groups})"),
    nb.SpaceToDepth: lambda m: Function(lambda x: space_to_depth(x, m.block_size), f"space_to_depth({m.block_size})"),
    nb.DepthToSpace: lambda m: Function(lambda x: depth_to_space(x, m.block_size), f"depth_to_space({m.block_size})"),
    nb.Flatten: lambda m: Function(flatten_nhwc, "flatten (NHWC order)"),
    nb.AvgPool2d: lambda m: Function(lambda x: avg_pool(x, m.kernel_size, m.stride, m.padding), "avg_pool"),
    nb.MaxPool2d: lambda m: Function(lambda x: _max_pool(x, m), "max_pool"),
    nb.GlobalAvgPool: lambda m: Function(global_avg_pool, "global_avg_pool"),
    nb.FakeQuant: lambda m: Function(lambda x: fake_quant(x, m.bits, m.bound, m.signed), f"fake_quant({m.bits})"),
    pokebnn.RunningBoundQuant: RunningBoundQuant,
    pokebnn.ChannelBound: ChannelBound,
    rbnet.BalancedActivation: BalancedActivation,
}


def _max_pool(x, m):
    if isinstance(m.padding, str):
        raise NotImplementedError("max pooling with 'same' padding has no twin yet")
    return TF.max_pool2d(x, m.kernel_size, m.stride, m.padding)


# --------------------------------------------------------------------------------------------------------
# Blocks: each numbnn block's forward, translated (children are the twin's attributes of the same names)
# --------------------------------------------------------------------------------------------------------
def sequential(t, x):
    for child in t.children():
        x = child(x)
    return x


def classifier_head(t, x):
    """Stem -> blocks -> global average pool (or NHWC flattening for ``head="flatten"``) -> classifier."""
    x = t.stem_norm(t.stem(x))
    for block in t.blocks:
        x = block(x)
    x = global_avg_pool(x) if getattr(t, "head", "pool") == "pool" else flatten_nhwc(x)
    return t.classifier(x)


def repeat_shortcut(t, x):
    """bnn-small / float-cnn: AvgPool (stride, "same") where strided, channels repeated ``repeat`` times."""
    if t.stride != 1:
        x = avg_pool(x, t.stride, None, "same")
    return concat_channels([x] * t.repeat) if t.repeat != 1 else x


def reactnet_block(t, x):
    """reactnet.BasicBlock as the chain a PyTorch user writes: numbnn runs each RPReLU(BN(.) + shortcut), a
    duplication's two BNs and concatenation included, as one fused op (nn.norm_add_activation), the same
    function (its PointwiseBranch is a container of conv and BN; the twin's entry below computes BN(conv) +
    shortcut)."""
    out1 = t.norm_3x3(t.conv_3x3(rsign_input(t.threshold_3x3, x)))
    out1 = t.act_3x3(out1 + (avg_pool(x, 2, 2, "same") if t.stride == 2 else x))
    z = rsign_input(t.threshold_1x1, out1)
    return t.act_1x1(concat_channels([branch(z, out1) for branch in t.pointwise]))


def rsign_input(threshold, x):
    """reactnet.rsign: RSign's input to a binary conv, or x for the plain ablation."""
    return x if threshold is None else threshold.before_sign(x)


def ftbnn_free_shortcut(t, x):
    if t.stride != 1:
        x = avg_pool(x, t.stride, t.stride, "same")
    if t.out_channels == t.in_channels:
        return x
    copies = -(-t.out_channels // t.in_channels)
    x = concat_channels([x] * copies)
    return x if copies * t.in_channels == t.out_channels else x[:, : t.out_channels]


def ftbnn_unit(t, x):
    branch = t.shuffle(x) if t.shuffle is not None else x
    branch = t.activation(t.norm(t.conv(branch)))
    return branch + (t.shortcut(x) if t.shortcut is not None else x)


def rbnet_align_cells(x, shifted: bool):
    """rbnet.align_cells in NCHW: cyclic shift on even sizes (shifted cells), +1 padding on odd ones."""
    undo = []
    for axis in (2, 3):
        size = x.shape[axis]
        if size % 2 == 0 and shifted:
            x = torch.roll(x, -1, dims=axis)
            undo.append(lambda y, axis=axis: torch.roll(y, 1, dims=axis))
        elif size % 2 == 1:
            before = 1 if shifted else 0
            pads = (before, 1 - before, 0, 0) if axis == 3 else (0, 0, before, 1 - before)
            x = TF.pad(x, pads, value=1.0)
            undo.append(lambda y, axis=axis, before=before, size=size: y.narrow(axis, before, size))

    def restore(y):
        for step in reversed(undo):
            y = step(y)
        return y

    return x, restore


def rbnet_centred_conv(conv, x, mean):
    """rbnet.centred_conv: conv(sign(x)) - alpha_o sum_{k,c} w_{o,c,k} m_c (w: sign(W) or W)."""
    w = SteSign.apply(conv.weight, conv.weight_clip) if conv.binarize else conv.weight
    correction = w.sum(dim=(2, 3)) @ mean
    if conv.mean_abs and conv.binarize:
        correction = correction * conv.weight.detach().abs().mean(dim=(1, 2, 3))
    y = conv(x)
    return y - per_channel(correction, y)


def rbnet_rpc(t, x, mean):
    x, restore = rbnet_align_cells(x, t.shifted)
    y = rbnet_centred_conv(t.conv, space_to_depth(x, 2), torch.cat([mean] * 4))
    return restore(depth_to_space(y, 2)) if t.stride == 1 else y


def rbnet_unit(t, x):
    shifted, mean = t.balance(x)
    out = t.conv(shifted, mean) if isinstance(t.conv, Twin) else rbnet_centred_conv(t.conv, shifted, mean)
    return t.activation(t.norm(out) + (t.shortcut(x) if t.shortcut is not None else x))


def pokebnn_reshape_shortcut(r, channels: int, stride: int, growth: str):
    """pokebnn.reshape_shortcut in NCHW."""
    if stride != 1:
        r = avg_pool(r, 3, stride, "same")
    have = r.shape[1]
    if channels > have:
        if growth == "zeros":
            return pad_channels(r, 0, channels - have)
        return concat_channels([r] * (channels // have))
    if channels < have:
        n, _, h, w = r.shape
        return r.reshape(n, channels, have // channels, h, w).mean(dim=2)
    return r


def pokebnn_quant_conv(t, x):
    w = quantized_weight(t.weight, t.weight_bits)
    return TF.conv2d(t.input_quant(x), w, t.bias, t.stride, t.padding, t.dilation, t.groups)


def pokebnn_quant_linear(t, x):
    return TF.linear(t.input_quant(x), quantized_weight(t.weight, t.weight_bits), t.bias)


def pokebnn_init(t, x):
    x = t.patchify_act(t.patchify_norm(t.patchify(x)))
    return t.grouped_act(t.grouped_norm(t.grouped(x)))


def pokebnn_se(t, r):
    s = TF.relu(t.squeeze(global_avg_pool(r)))
    gate = TF.hardsigmoid(t.excite(s))
    return gate.view(gate.shape[0], gate.shape[1], 1, 1)


def pokebnn_conv(t, x, block_input=None):
    channels = t.conv.weight.shape[0]
    signs = x if t.bound is None else (x, t.conv.quantizer, t.bound(x))
    y = t.norm(t.conv(signs)) + pokebnn_reshape_shortcut(x, channels, t.stride, "zeros")
    if t.bottleneck_input is not None:
        y = y + pokebnn_reshape_shortcut(block_input, channels, t.bottleneck_input[1], "tile")
    return t.out_norm(t.activation(y) * t.excite(x))


def pokebnn_net(t, x):
    x = t.stem(x)
    for block in t.blocks:
        x = block(x)
    return t.classifier(global_avg_pool(x))


def resnet_block(t, x):
    out = TF.relu(t.norm1(t.conv1(x)))
    shortcut = avg_pool(x, t.stride, t.stride, "same") if t.stride != 1 else x
    if t.extra:
        shortcut = pad_channels(shortcut, 0, t.extra)
    return TF.relu(t.norm2(t.conv2(out)) + shortcut)


def resnet_net(t, x):
    x = TF.relu(t.stem(x))
    for block in t.blocks:
        x = block(x)
    return t.classifier(global_avg_pool(x))


def float_cnn_net(t, x):
    x = TF.relu(t.stem_norm(t.stem(x)))
    for block in t.blocks:
        x = block(x)
    return t.classifier(global_avg_pool(x) if t.head == "pool" else flatten_nhwc(x))


# Block classes whose children are torch modules (their weights are not the block's own), keyed by the
# numbnn class; the first match along the class hierarchy wins (ReActXGB -> ReActNetA, BasicBlocks that
# are Sequentials -> Sequential).
BLOCKS = {
    nb.Sequential: sequential,
    nb.ModuleList: None,  # a container only: its owner iterates it
    reactnet.PointwiseBranch: lambda t, z, shortcut: t.norm(t.conv(z)) + shortcut,
    reactnet.BasicBlock: reactnet_block,
    reactnet.ReActNetA: classifier_head,
    bnn_small.BinaryBlock: lambda t, x: t.activation(t.norm(t.conv(t.threshold.before_sign(x))) + repeat_shortcut(t, x)),
    bnn_small.BnnSmall: classifier_head,
    float_cnn.FloatBlock: lambda t, x: TF.relu(t.norm(t.conv(x)) + repeat_shortcut(t, x)),
    float_cnn.FloatCnn: float_cnn_net,
    ftbnn.FreeShortcut: ftbnn_free_shortcut,
    ftbnn.BinaryUnit: ftbnn_unit,
    ftbnn.Ftbnn: classifier_head,
    rbnet.DownsampleShortcut: lambda t, x: t.norm(t.conv(avg_pool(x, t.stride, t.stride, "same") if t.stride != 1 else x)),
    rbnet.ReshapedPointwiseConv: rbnet_rpc,
    rbnet.BinaryUnit: rbnet_unit,
    rbnet.RbNet: classifier_head,
    pokebnn.QuantConv2d: pokebnn_quant_conv,
    pokebnn.QuantLinear: pokebnn_quant_linear,
    pokebnn.PokeInit: pokebnn_init,
    pokebnn.SqueezeExcite: pokebnn_se,
    pokebnn.PokeConv: pokebnn_conv,
    pokebnn.Bottleneck: lambda t, x: t.expand(t.spatial(t.reduce(x)), x),
    pokebnn.PokeBnn: pokebnn_net,
    resnet.BasicBlock: resnet_block,
    resnet.ResNet20: resnet_net,
}

# Plain attributes a block's forward reads (strides, widths, options), copied onto its twin.
_PLAIN = (int, float, str, bool, tuple, type(None))


def _lookup(table, m):
    for cls in type(m).__mro__:
        if cls in table:
            return table[cls]
    raise NotImplementedError(f"no PyTorch twin for numbnn {type(m).__module__}.{type(m).__name__}: "
                              "add it to LAYERS or BLOCKS in benchmarks/torch_twin.py")


def build_twin(module) -> nn.Module:
    """The torch twin of numbnn ``module`` (recursively; see the module docstring). Weights are not copied."""
    kind = next((table for cls in type(module).__mro__ for table in (BLOCKS, LAYERS) if cls in table), None)
    if kind is LAYERS:
        return leaf_layer(module)
    forward_fn = _lookup(BLOCKS, module)
    if isinstance(module, nb.ModuleList) and not isinstance(module, nb.Sequential):
        return nn.ModuleList(build_twin(child) for child in module)
    twin = Twin(module, forward_fn)
    for name, value in vars(module).items():
        if name.startswith("_") or name == "training":
            continue
        if isinstance(value, nb.Module):
            twin.add_module(name, build_twin(value))
        elif isinstance(value, _PLAIN) and not hasattr(nn.Module, name):
            setattr(twin, name, value)
    if isinstance(module, pokebnn.QuantConv2d):  # a conv layer that is also a block (its input quantizer)
        twin.weight = nn.Parameter(torch.zeros(module.out_channels, module.in_channels // module.groups, *module.kernel_size))
        twin.bias = None if module.bias is None else nn.Parameter(torch.zeros(module.out_channels))
    elif isinstance(module, pokebnn.QuantLinear):
        twin.weight = nn.Parameter(torch.zeros(module.out_features, module.in_features))
        twin.bias = None if module.bias is None else nn.Parameter(torch.zeros(module.out_features))
    return twin


def copy_weights(model, twin) -> None:
    """numbnn's parameters and buffers into the twin, key for key (4-D conv weights OHWI -> OIHW)."""
    state = {}
    for name, array in model.state_dict().items():
        array = np.asarray(array)
        state[name] = torch.from_numpy(array.transpose(0, 3, 1, 2).copy() if array.ndim == 4 else array.copy())
    missing, unexpected = twin.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"state dicts do not line up: twin lacks {unexpected}, numbnn lacks {missing}")


# --------------------------------------------------------------------------------------------------------
# Checking that both compute one network
# --------------------------------------------------------------------------------------------------------
def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def exercised_model(name: str, model_args: dict | None = None, seed: int = 0):
    """A numbnn model whose every parameter and buffer holds a non-trivial value: one training-mode forward
    (PokeBNN's running bounds), then random batch-norm statistics and per-channel parameters moved off
    their initial 0 / 1 (so a swapped or ignored one shows in the logits). ``seed`` fixes all of it."""
    nb.init.seed(seed)
    model = build_model(name, **(model_args or {}))
    model.train()
    x, _ = synthetic_batches(CHECK_IMAGES, count=1, seed=seed + 7)[0]
    with no_grad():
        model(Tensor(x))
    rng = np.random.default_rng(seed)
    for key, array in model.named_buffers():
        if key.endswith("running_var"):
            array[...] = rng.uniform(0.5, 1.5, array.shape)
        elif key.endswith("running_mean"):
            array[...] = rng.normal(0, 0.2, array.shape)
    for key, param in model.named_parameters():
        if param.data.ndim == 1:
            param.data[...] += rng.normal(0, 0.1, param.data.shape).astype(param.data.dtype)
    return model


def agreement(name: str, model_args: dict | None = None, seed: int = 0) -> dict:
    """Max abs logit difference numbnn vs twin on 32 fixed images, training mode then evaluation mode.

    The check (``train_max_abs_diff``, ``eval_max_abs_diff``; both must stay below :data:`TOLERANCE`)
    runs both networks in float64: numbnn's parameters and input cast to float64 (its ops follow
    their inputs' dtype; the packed forward is exact in any dtype), the twin with ``.double()``. Then the
    only differences are float64 rounding, about 1e-15, so a wrong layer, order or constant shows.
    In float32 (``*_float32_max_abs_diff``, reported for information: the timed networks) rounding
    alone differs by ~1e-7 relative (PyTorch's CPU batch norm, for one, sums each channel's statistics
    in float32 where numbnn sums in float64); that moves the odd activation within ~1e-6 of 0 across
    the sign, or a fake-quantized value across a rounding boundary, and each such flip changes a binary
    conv's input by 2 or a quantized one by a step: binary networks' float32 logits can then differ by
    1e-2 or more although both compute the same function. ``seed`` picks the weights and the images.
    """
    model = exercised_model(name, model_args, seed)
    x, _ = synthetic_batches(CHECK_IMAGES, count=1, seed=seed + 1)[0]
    state = model.state_dict()
    result = {}
    for dtype, suffix in ((np.float64, ""), (np.float32, "_float32")):
        model.load_state_dict(state)
        for param in model.parameters():
            param.data = param.data.astype(dtype)
        twin = build_twin(model).to(torch.float64 if dtype == np.float64 else torch.float32)
        copy_weights(model, twin)
        for mode in ("train", "eval"):
            model.train(mode == "train")
            twin.train(mode == "train")
            if mode == "eval":
                copy_weights(model, twin)  # the running statistics the training-mode pass just moved
            with no_grad():
                ours = model(Tensor(x.astype(dtype))).data
            with torch.no_grad():
                theirs = twin(nchw(x.astype(dtype))).numpy()
            result[f"{mode}{suffix}_max_abs_diff"] = float(np.abs(ours - theirs).max())
            result[f"{mode}{suffix}_same_class"] = float((ours.argmax(1) == theirs.argmax(1)).mean())
    result["max_abs_logit"] = float(np.abs(ours).max())
    result["ok"] = max(result["train_max_abs_diff"], result["eval_max_abs_diff"]) < TOLERANCE
    model.load_state_dict(state)
    result["grad_max_rel_diff"] = gradient_difference(model, x)
    return result


def gradient_difference(model, x) -> float:
    """Both networks in float64 and training mode: the largest, over parameters, of max |grad numbnn -
    grad twin| / max |grad numbnn| of a cross-entropy loss, so the straight-through estimators are checked
    as well as the forward pass. (A tie can still break differently: PokeBNN's data-driven bound is a
    mean that numpy and PyTorch may round 1 ulp apart, and an activation exactly at the bound then passes
    the clipped STE in one and not in the other; with the default seed one SE unit of pokebnn does.)"""
    from numbnn import functional as F

    state = model.state_dict()
    for param in model.parameters():
        param.data = param.data.astype(np.float64)
        param.grad = None
    twin = build_twin(model).double()
    copy_weights(model, twin)
    model.train()
    twin.train()
    labels = np.arange(len(x)) % 10
    F.cross_entropy(model(Tensor(x.astype(np.float64))), labels).backward()
    TF.cross_entropy(twin(nchw(x.astype(np.float64))), torch.from_numpy(labels)).backward()
    grads = dict(twin.named_parameters())
    largest = max(float(np.abs(p.grad).max()) for p in model.parameters())
    worst = 0.0
    for name, param in model.named_parameters():
        ours, theirs = np.asarray(param.grad), grads[name].grad.numpy()
        if ours.ndim == 4:
            theirs = theirs.transpose(0, 2, 3, 1)
        scale = max(np.abs(ours).max(), 1e-3 * largest)  # a gradient that is 0 in exact arithmetic: rounding only
        worst = max(worst, float(np.abs(ours - theirs).max() / scale))
    model.load_state_dict(state)
    return worst


# --------------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------------
FORMATS = {"channels_last": torch.channels_last, "nchw": torch.contiguous_format}


def torch_optimizer(model, twin, config):
    """numbnn's optimizer for ``config`` (numbnn.train.optimizers) on the twin's parameters of the same names."""
    decayed = {id(p) for p in split_decay(model.named_parameters(), config.weight_decay, config.decay_rule)[0]["params"]}
    params = dict(twin.named_parameters())
    names = {name for name, p in model.named_parameters() if id(p) in decayed}
    groups = [{"params": [params[n] for n in params if n in names], "weight_decay": config.weight_decay},
              {"params": [params[n] for n in params if n not in names], "weight_decay": 0.0}]
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=(0.9, config.beta2))
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, config.beta2))
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)


def torch_trainer(trainer: TrainStep, memory_format):
    """step(i): the twin's training step on numbnn's batch i (mod count), in ``memory_format``."""
    twin = build_twin(trainer.model)
    copy_weights(trainer.model, twin)
    twin = twin.to(memory_format=memory_format).train()
    optimizer = torch_optimizer(trainer.model, twin, trainer.config)
    config = trainer.config
    batches = [(nchw(x).contiguous(memory_format=memory_format), torch.from_numpy(y)) for x, y in trainer.batches]

    def step(i):
        x, y = batches[i % len(batches)]
        optimizer.zero_grad(set_to_none=True)
        loss = TF.cross_entropy(twin(x), y, label_smoothing=config.label_smoothing)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(twin.parameters(), config.grad_clip)
        optimizer.step()
        return loss.detach().item()

    return twin, batches, step


def run_contender(script: Path, arguments: list) -> dict:
    """One timing process (the user's environment, not this process's: numbnn.kernels adds GOMP_SPINCOUNT
    to os.environ at import); its last stdout line is a JSON object."""
    run = subprocess.run([sys.executable, str(script), *map(str, arguments)], env=USER_ENVIRONMENT,
                         capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(f"{script.name} {' '.join(map(str, arguments))} failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def memory_copy_gbs(megabytes: int = 64, repeats: int = 7) -> float:
    """GB/s (read + write) of numpy copying ``megabytes`` on one thread, best of ``repeats``: the machine's
    memory speed just before a round. The machine's speed drifts by up to 1.5x within minutes, and numbnn's
    steps (mostly passes over memory) drift with it more than the twins' (mostly float convolutions), so
    each round records it beside its times."""
    source = np.ones(megabytes << 18, np.float32)
    target = np.empty_like(source)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - start)
    return round(2 * source.nbytes / best / 1e9, 2)


UNSTEADY_SPREAD = 1.5  # slowest round over fastest beyond which a phase's figures are flagged


def round_spreads(timing: dict) -> dict:
    """Each contender's slowest round over its fastest (``timing``: contender -> {"rounds_s": [...]})."""
    return {contender: round(max(t["rounds_s"]) / min(t["rounds_s"]), 2) for contender, t in timing.items()}


def time_model(name: str, batch_size: int, rounds: int, steps: int, warmup: int, threads: int, train: bool = True,
               evaluate: bool = True, packed: bool = False, cache_runs: bool = False) -> dict:
    """Training steps (numbnn, twin NCHW, twin channels_last) and eval passes, each library in processes of
    its own, alternating round by round (module docstring); medians over the rounds, and the memory copy
    speed measured before each round (:func:`memory_copy_gbs`)."""
    result = {"batch_size": batch_size, "load_average_1min": [round(os.getloadavg()[0], 2)], "memory_copy_gbs": []}
    common = ["--model", name, "--steps", steps, "--warmup", warmup, "--threads", threads]
    no_train = [] if train else ["--no-train"]
    numbnn_flags = (no_train + (["--eval"] if evaluate else []) + (["--packed"] if packed else [])
                    + (["--cache-runs"] if packed and cache_runs else []))
    torch_flags = no_train + ([] if evaluate else ["--no-eval"])
    rounds_of = {"train": {}, "eval": {}}
    for _ in range(rounds):
        result["memory_copy_gbs"].append(memory_copy_gbs())
        numbnn_side = run_contender(HERE / "numbnn_contender.py", common + ["--batch-size", batch_size] + numbnn_flags)
        torch_side = run_contender(Path(__file__), common + ["--batch-sizes", batch_size, "--contender"] + torch_flags)
        sides = {"train": {"numbnn": numbnn_side.get("train"), **torch_side.get("train", {})},
                 "eval": {"numbnn_float": numbnn_side.get("float"), "numbnn_packed": numbnn_side.get("packed"),
                          **torch_side.get("eval", {})}}
        for phase, contenders in sides.items():
            for contender, timing in contenders.items():
                if timing is not None:
                    rounds_of[phase].setdefault(contender, []).append(timing)
    timing = {phase: {contender: {"step_s": round(statistics.median(r["step_s"] for r in runs), 5),
                                  "step_cpu_s": round(statistics.median(r["step_cpu_s"] for r in runs), 5),
                                  "rounds_s": [round(r["step_s"], 5) for r in runs]}
                      for contender, runs in contenders.items()} for phase, contenders in rounds_of.items()}
    if train:
        best = min(FORMATS, key=lambda fmt: timing["train"][f"torch_{fmt}"]["step_s"])
        numbnn_s, torch_s = timing["train"]["numbnn"]["step_s"], timing["train"][f"torch_{best}"]["step_s"]
        result["train"] = {
            **timing["train"], "torch_best_format": best,
            "numbnn_epoch_s": round(numbnn_s * EPOCH_IMAGES / batch_size, 1),
            "torch_epoch_s": round(torch_s * EPOCH_IMAGES / batch_size, 1),
            "epoch_ratio": round(numbnn_s / torch_s, 3),
            "epoch_ratio_cpu": round(timing["train"]["numbnn"]["step_cpu_s"] / timing["train"][f"torch_{best}"]["step_cpu_s"], 3),
        }
    if evaluate:
        best = min(FORMATS, key=lambda fmt: timing["eval"][f"torch_{fmt}"]["step_s"])
        torch_s = timing["eval"][f"torch_{best}"]["step_s"]
        result["eval"] = {**timing["eval"], "torch_best_format": best,
                          "float_ratio": round(timing["eval"]["numbnn_float"]["step_s"] / torch_s, 3)}
        if packed:
            result["eval"]["packed_ratio"] = round(timing["eval"]["numbnn_packed"]["step_s"] / torch_s, 3)
    for phase in ("train", "eval"):
        if phase in result:
            spreads = round_spreads(timing[phase])
            result[phase]["rounds_spread"] = spreads
            result[phase]["unsteady"] = max(spreads.values(), default=1.0) > UNSTEADY_SPREAD
    result["load_average_1min"].append(round(os.getloadavg()[0], 2))
    return result


def torch_contender(name: str, batch_size: int, steps: int, warmup: int, train: bool, evaluate: bool) -> dict:
    """The twin's side of one round, in this (fresh) process: median step times of both memory formats."""
    trainer = TrainStep(name, batch_size)
    twins = {fmt: torch_trainer(trainer, memory_format) for fmt, memory_format in FORMATS.items()}
    result = {}
    if train:
        result["train"] = {}
        for fmt in FORMATS:
            result["train"][f"torch_{fmt}"] = median_step_seconds(twins[fmt][2], steps, warmup)
    if evaluate:
        result["eval"] = {}
        for fmt in FORMATS:
            twin, x = twins[fmt][0].eval(), twins[fmt][1][0][0]
            result["eval"][f"torch_{fmt}"] = median_step_seconds(lambda i: _torch_eval(twin, x), steps, warmup)
    return result


def _torch_eval(twin, x):
    with torch.inference_mode():
        return twin(x)


def run_model(name: str, args) -> dict:
    batches = [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else (
        [64, 128] if name == "reactnet-a" else [128])
    result = {"model": name, "cpu_model": cpu_model(), "threads": args.threads, "torch": torch.__version__,
              # the timing processes' environment for libgomp (numbnn's process adds its own GOMP_SPINCOUNT)
              "openmp_env": {k: USER_ENVIRONMENT.get(k) for k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")},
              "agreement": agreement(name, seed=args.seed),
              "binary_macs_per_image": int(summarize(build_model(name)).total.bops)}
    if args.train or args.eval:
        result["timing"] = {str(b): time_model(name, b, args.rounds, args.steps, args.warmup, args.threads, args.train,
                                               args.eval, args.packed, args.cache_runs) for b in batches}
        if args.packed:
            result["packed_runs"] = "cache_batch_size" if args.cache_runs else "one run per batch"
    return result


def _unsteady_note(phase: dict) -> str:
    """" UNSTEADY (...)" naming the contenders whose rounds spread beyond UNSTEADY_SPREAD, else ""."""
    if not phase.get("unsteady"):
        return ""
    wide = ", ".join(f"{c} rounds x{v}" for c, v in phase["rounds_spread"].items() if v > UNSTEADY_SPREAD)
    return f" UNSTEADY ({wide})"


# The model against whose training epoch per binary MAC the others are compared (issue goal: ftbnn and
# pokebnn within 1.5x of it), at this batch size.
MAC_REFERENCE, MAC_REFERENCE_BATCH = "reactnet-a", "128"


def epoch_per_binary_mac(rows: list[dict]) -> dict:
    """Per model, its numbnn training epoch per binary MAC over ``MAC_REFERENCE``'s, both at batch
    ``MAC_REFERENCE_BATCH`` and from this run (empty if the reference was not timed in it)."""

    def per_mac(row):
        train = row.get("timing", {}).get(MAC_REFERENCE_BATCH, {}).get("train")
        return train["numbnn_epoch_s"] / row["binary_macs_per_image"] if train and row["binary_macs_per_image"] else None

    reference = next((per_mac(r) for r in rows if r["model"] == MAC_REFERENCE), None)
    if reference is None:
        return {}
    return {r["model"]: round(per_mac(r) / reference, 3) for r in rows if per_mac(r) is not None}


def summary_line(row: dict) -> str:
    a = row["agreement"]
    text = (f"{row['model']:<11} logits max |diff| train {a['train_max_abs_diff']:.1e}, eval {a['eval_max_abs_diff']:.1e}"
            f" ({'ok' if a['ok'] else 'MISMATCH'}; float32 twin {a['train_float32_max_abs_diff']:.1e}, "
            f"{a['eval_float32_max_abs_diff']:.1e}; gradients {a['grad_max_rel_diff']:.1e} relative)")
    for batch, t in row.get("timing", {}).items():
        if "train" in t:
            tr = t["train"]
            text += (f"; batch {batch}: epoch numbnn {tr['numbnn_epoch_s']} s / torch {tr['torch_epoch_s']} s "
                     f"({tr['torch_best_format']}) = {tr['epoch_ratio']}{_unsteady_note(tr)}")
        if "eval" in t:
            text += f", eval ratio {t['eval']['float_ratio']}"
            if "packed_ratio" in t["eval"]:
                text += f" (packed {t['eval']['packed_ratio']})"
            text += _unsteady_note(t["eval"])
        text += f", load {t['load_average_1min']}, memory copy {t['memory_copy_gbs']} GB/s"
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", help="a registered model (repeatable)")
    parser.add_argument("--all", action="store_true", help="every registered model")
    parser.add_argument("--batch-sizes", help="comma-separated (default: 128; 64,128 for reactnet-a)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per contender and round (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-train", dest="train", action="store_false", help="skip the training-step timing")
    parser.add_argument("--no-eval", dest="eval", action="store_false", help="skip the eval-pass timing")
    parser.add_argument("--check-only", action="store_true", help="only the logits agreement")
    parser.add_argument("--seed", type=int, default=0, help="weights and images of the logits check")
    parser.add_argument("--packed", action="store_true", help="also time numbnn's packed model in the eval pass")
    parser.add_argument("--cache-runs", action="store_true", help="with --packed: predict in runs of the packed "
                        "model's cache_batch_size (opt-in, numbnn.inference.runs) instead of one run per batch")
    parser.add_argument("--json", action="store_true", help="one JSON object per model, then a summary object")
    parser.add_argument("--contender", action="store_true",
                        help="internal: time the twin alone for one model and batch size, print JSON (a timing round)")
    args = parser.parse_args()
    set_threads(args.threads)
    torch.set_num_threads(args.threads)
    if args.contender:
        print(json.dumps(torch_contender(args.model[0], int(args.batch_sizes), args.steps, args.warmup, args.train,
                                         args.eval)))
        return
    if args.check_only:
        args.train = args.eval = False
    names = [spec.name for spec in available_models()] if args.all else (args.model or ["reactnet-a"])
    rows = []
    for name in names:
        row = run_model(name, args)
        rows.append(row)
        print(summary_line(row), flush=True)
        if args.json:
            print(json.dumps(row), flush=True)
    if args.json:
        print(json.dumps({"summary": [{"model": r["model"], "agreement_ok": r["agreement"]["ok"],
                                       "train_max_abs_diff": r["agreement"]["train_max_abs_diff"],
                                       "eval_max_abs_diff": r["agreement"]["eval_max_abs_diff"],
                                       "epoch_ratio": {b: t["train"]["epoch_ratio"] for b, t in r.get("timing", {}).items()
                                                       if "train" in t},
                                       "unsteady": {f"{b} {phase}": True for b, t in r.get("timing", {}).items()
                                                    for phase in ("train", "eval") if t.get(phase, {}).get("unsteady")}}
                                      for r in rows],
                          f"epoch_per_binary_mac_vs_{MAC_REFERENCE}": epoch_per_binary_mac(rows),
                          "cpu_model": cpu_model(), "threads": args.threads}))
    if not all(r["agreement"]["ok"] for r in rows):
        raise SystemExit("some twins do not agree with numbnn's logits (see above)")


if __name__ == "__main__":
    main()
