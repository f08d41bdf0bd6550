"""Differentiable ops on NHWC activations and OHWI weights (``import numbnn.functional as F``).

One module per family: ``conv`` (float convolution), ``binary`` (convolution / linear whose forward
runs on packed bits), ``quantizers`` (sign STEs as :class:`Quantizer` objects and their registry, fake
quantization), ``linear``, ``norm`` (also the fused block op: BN + residual + RPReLU/DPReLU),
``pooling``, ``activations``, ``losses``, ``shape``.
"""

from numbnn.functional.activations import dprelu, dropout, hard_sigmoid, prelu, relu
from numbnn.functional.binary import binary_conv2d, binary_linear
from numbnn.functional.conv import conv2d
from numbnn.functional.linear import linear
from numbnn.functional.losses import cross_entropy, kl_div, log_softmax, soft_cross_entropy, softmax
from numbnn.functional.norm import batch_norm, batch_norm_add_dprelu
from numbnn.functional.pooling import avg_pool2d, global_avg_pool, max_pool2d
from numbnn.functional.quantizers import (
    QUANTIZERS, Quantizer, approx_sign, fake_quant, get_quantizer, sign, sign_mean, ste_sign,
)
from numbnn.functional.shape import (
    add, channel_gate, channel_shuffle, concat, depth_to_space, pad, reshape, roll, space_to_depth,
)

__all__ = [
    "QUANTIZERS",
    "Quantizer",
    "add",
    "approx_sign",
    "avg_pool2d",
    "batch_norm",
    "batch_norm_add_dprelu",
    "binary_conv2d",
    "binary_linear",
    "channel_gate",
    "channel_shuffle",
    "concat",
    "conv2d",
    "cross_entropy",
    "depth_to_space",
    "dprelu",
    "dropout",
    "fake_quant",
    "get_quantizer",
    "global_avg_pool",
    "hard_sigmoid",
    "kl_div",
    "linear",
    "log_softmax",
    "max_pool2d",
    "pad",
    "prelu",
    "relu",
    "reshape",
    "roll",
    "sign",
    "sign_mean",
    "soft_cross_entropy",
    "softmax",
    "space_to_depth",
    "ste_sign",
]
