"""``resnet-20``: the CIFAR ResNet of He, Zhang, Ren, Sun ("Deep Residual Learning for Image Recognition",
arXiv 1512.03385, sec. 4.2), a float model for 28x28 inputs: the zoo's distillation teacher.

Block diagram (NHWC; defaults ``width=16``, ``depth=3``: 6 x 3 + 2 = 20 weighted layers, 0.27M parameters)::

    x [N,28,28,1]
    -> Conv2d 3x3, 1->16 -> BN -> ReLU
    -> stage 1: 3 BasicBlocks 16      28x28
    -> stage 2: 3 BasicBlocks 32      14x14   (the first one strided)
    -> stage 3: 3 BasicBlocks 64       7x7    (the first one strided)
    -> global average pool -> Linear 64->10

    BasicBlock(C -> C', stride s):
        out = ReLU(BN(Conv3x3_s(x)))
        out = ReLU(BN(Conv3x3(out)) + shortcut(x))     shortcut: identity, or where the shape changes
                                                       AvgPool 2x2 then zero-padded channels

The paper's CIFAR shortcut "option A" is an identity with extra zero channels, subsampled by stride 2;
here the subsampling is a 2x2 average pool (as in ReActNet's shortcuts), an assumption that keeps every
input pixel in the shortcut. The paper's network ends at 8x8 maps for 32x32 inputs; 28x28 ends at 7x7.

Why this model: a binary student learns more from a teacher's softmax than from one-hot labels
(ReActNet, arXiv 2003.03488 sec. 4.3), and the teacher has to be clearly better than the student
(ResNet-20 is reported at about 95.6% on FashionMNIST; the BNNs here reach 90-92%). Its 0.27M float
parameters ship in ``data/`` as a ~1.1 MB checkpoint.
"""

import numbnn.functional as F
from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.models.registry import register_model
from numbnn.nn import BatchNorm, Conv2d, Linear, Module, ModuleList, Sequential


class BasicBlock(Module):
    """Conv3x3-BN-ReLU, Conv3x3-BN, plus the shortcut, then ReLU (module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        self.stride, self.extra = stride, out_channels - in_channels
        if self.extra < 0:
            raise InputError(f"a ResNet block keeps or grows its width, got {in_channels} -> {out_channels}")
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.norm1 = BatchNorm(out_channels)
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm2 = BatchNorm(out_channels)

    def shortcut(self, x):
        if self.stride != 1:
            x = F.avg_pool2d(x, self.stride, self.stride, "same")
        if self.extra:
            x = F.pad(x, ((0, 0), (0, 0), (0, 0), (0, self.extra)))
        return x

    def forward(self, x):
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


@register_model("resnet-20", summary="Float CIFAR ResNet-20 (He et al.): the distillation teacher shipped in data/",
                paper="He et al., arXiv 1512.03385, sec. 4.2")
class ResNet20(Module):
    """See the module docstring. ``width``: channels of the first stage (doubled per stage);
    ``depth``: basic blocks per stage (3 -> ResNet-20, 5 -> ResNet-32)."""

    def __init__(self, width: int = 16, depth: int = 3, num_classes: int = 10, in_channels: int = 1):
        width, depth = check_int(width, "width"), check_int(depth, "depth")
        widths = [width, 2 * width, 4 * width]
        self.stem = Sequential(Conv2d(in_channels, width, 3, padding=1), BatchNorm(width))
        blocks, channels = [], width
        for stage, stage_width in enumerate(widths):
            for index in range(depth):
                blocks.append(BasicBlock(channels, stage_width, 2 if stage > 0 and index == 0 else 1))
                channels = stage_width
        self.blocks = ModuleList(blocks)
        self.classifier = Linear(channels, num_classes)

    @classmethod
    def default_recipe(cls) -> dict:
        """He et al.'s CIFAR optimiser (SGD with Nesterov momentum 0.9, lr 0.1, batch 128, weight decay
        on the kernels) with a cosine schedule after one warm-up epoch, 2-pixel crop and flip."""
        return {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "schedule": "cosine", "warmup_epochs": 1.0,
                "epochs": 30, "batch_size": 128, "weight_decay": 5e-4, "decay_rule": "ndim>1",
                "crop_padding": 2, "flip": True}

    def forward(self, x):
        x = F.relu(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return self.classifier(F.global_avg_pool(x))
