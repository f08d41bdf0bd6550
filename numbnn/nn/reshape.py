"""Layers that only move values around: space/depth rearrangement, channel shuffle, flatten."""

from __future__ import annotations

from dataclasses import dataclass

import numbnn.functional as F
from numbnn.autograd import Tensor
from numbnn.checks import check_int
from numbnn.nn.module import Module


class SpaceToDepth(Module):
    """[N, H, W, C] -> [N, H/b, W/b, b*b*C]: each b x b cell becomes one pixel (RB-Net's RPC, before a 1x1 conv)."""

    def __init__(self, block_size: int):
        self.block_size = check_int(block_size, "block_size")

    def forward(self, x):
        return F.space_to_depth(x, self.block_size)

    def extra_repr(self) -> str:
        return str(self.block_size)


class DepthToSpace(SpaceToDepth):
    """[N, H, W, b*b*C] -> [N, H*b, W*b, C]: the inverse of SpaceToDepth."""

    def forward(self, x):
        return F.depth_to_space(x, self.block_size)


@dataclass
class ShuffledInput:
    """A map whose channel shuffle a :class:`~numbnn.nn.conv.BinaryConv2d` takes on its packed path
    (``F.binary_conv2d(..., shuffle_groups=)``: x's gradient comes back unshuffled from the conv's own last
    pass); any other reader asks :meth:`shuffled`. What :meth:`ChannelShuffle.before_conv` returns."""

    value: Tensor
    groups: int

    def shuffled(self):
        return F.channel_shuffle(self.value, self.groups)


class ChannelShuffle(Module):
    """Interleave the channels of ``groups`` groups (ShuffleNet), so grouped convs exchange information.

    Before a binary conv, ``conv(shuffle.before_conv(x))``: the same values as ``conv(shuffle(x))``, the
    shuffle done by the conv (:class:`ShuffledInput`)."""

    def __init__(self, groups: int):
        self.groups = check_int(groups, "groups")

    def forward(self, x):
        return F.channel_shuffle(x, self.groups)

    def before_conv(self, x) -> ShuffledInput:
        return ShuffledInput(x, self.groups)

    def extra_repr(self) -> str:
        return str(self.groups)


class Flatten(Module):
    """[N, ...] -> [N, prod(...)]."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1)
