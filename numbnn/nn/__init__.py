"""Layers and models as ``Module`` trees (``import numbnn.nn as nn``).

NHWC activations, OHWI conv weights; parameters are float32 Tensors initialised from a seeded
generator (:mod:`numbnn.nn.init`); binary layers take an activation quantizer
(:class:`numbnn.functional.Quantizer`, or its registered name); a binary conv also takes an
:class:`RSign`'d input (:class:`SignInput`).
"""

from numbnn.nn import init
from numbnn.nn.activation import DPReLU, FPReLU, HardSigmoid, PReLU, ReLU, RPReLU
from numbnn.nn.conv import BinaryConv2d, Conv2d
from numbnn.nn.linear import BinaryLinear, Linear
from numbnn.nn.module import Module, ModuleList, Sequential
from numbnn.nn.norm import BatchNorm, norm_activation_add, norm_add_activation
from numbnn.nn.pooling import AvgPool2d, GlobalAvgPool, MaxPool2d
from numbnn.nn.quantizers import FakeQuant, RSign, SignInput
from numbnn.nn.reshape import ChannelShuffle, DepthToSpace, Flatten, ShuffledInput, SpaceToDepth

__all__ = [
    "AvgPool2d", "BatchNorm", "BinaryConv2d", "BinaryLinear", "ChannelShuffle", "Conv2d", "DPReLU",
    "DepthToSpace", "FPReLU", "FakeQuant", "Flatten", "GlobalAvgPool", "HardSigmoid", "Linear", "MaxPool2d",
    "Module", "ModuleList", "PReLU", "RPReLU", "RSign", "ReLU", "Sequential", "ShuffledInput", "SignInput",
    "SpaceToDepth", "init",
    "norm_activation_add",
    "norm_add_activation",
]
