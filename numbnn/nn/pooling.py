"""Pooling layers on NHWC maps."""

from __future__ import annotations

import numbnn.functional as F
from numbnn.nn.module import Module


class AvgPool2d(Module):
    """Mean over kernel_size windows (stride defaults to kernel_size; ReActNet's shortcut uses 2x2 / 2)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.stride, self.padding = kernel_size, kernel_size if stride is None else stride, padding

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(AvgPool2d):
    """Maximum over kernel_size windows (stride defaults to kernel_size)."""

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class GlobalAvgPool(Module):
    """[N, H, W, C] -> [N, C]: the mean over all pixels."""

    def forward(self, x):
        return F.global_avg_pool(x)
