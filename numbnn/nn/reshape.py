"""Layers that only move values around: space/depth rearrangement, channel shuffle, flatten."""

from __future__ import annotations

import numbnn.functional as F
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


class ChannelShuffle(Module):
    """Interleave the channels of ``groups`` groups (ShuffleNet), so grouped convs exchange information."""

    def __init__(self, groups: int):
        self.groups = check_int(groups, "groups")

    def forward(self, x):
        return F.channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return str(self.groups)


class Flatten(Module):
    """[N, ...] -> [N, prod(...)]."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1)
