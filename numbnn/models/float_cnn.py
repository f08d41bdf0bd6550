"""``float-cnn``: the real-valued twin of ``bnn-small``, used as a baseline and as a distillation teacher.

Block diagram (NHWC; widths are the defaults)::

    x [N,28,28,1]
    -> Conv2d 3x3, 1->32 -> BN -> ReLU
    -> FloatBlock 32->32  stride 1   28x28
    -> FloatBlock 32->64  stride 2   14x14
    -> FloatBlock 64->128 stride 2    7x7
    -> FloatBlock 128->128 stride 1   7x7
    -> global average pool -> Linear 128->10

    FloatBlock(C -> C', stride s):  ReLU(BN(Conv3x3_s(x)) + shortcut(x)),
                                    shortcut: AvgPool 2x2 when s = 2, channels repeated C'/C times

Why: distillation works best when the teacher sees the data the way the student does, so this is
``bnn-small`` with every binary piece made real (float conv instead of RSign + binary conv, ReLU
instead of RPReLU) and the same parameter-free shortcuts. It has the same weight count and MACs as
the student, so the accuracy gap between the two is the price of binarisation alone; ReActNet
(Liu et al. 2020) trains its students against such a teacher's softmax.
"""

import numbnn.functional as F
from numbnn.errors import InputError
from numbnn.models.registry import register_model
from numbnn.nn import BatchNorm, Conv2d, Linear, Module, ModuleList


class FloatBlock(Module):
    """Conv2d 3x3 -> BN, plus the shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        if out_channels % in_channels:
            raise InputError(f"a block's width can only grow by a whole factor, got {in_channels} -> {out_channels}")
        self.stride, self.repeat = stride, out_channels // in_channels
        self.conv = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.norm = BatchNorm(out_channels)

    def shortcut(self, x):
        if self.stride != 1:
            x = F.avg_pool2d(x, self.stride)
        if self.repeat != 1:
            x = F.concat([x] * self.repeat, axis=-1)
        return x

    def forward(self, x):
        return F.relu(self.norm(self.conv(x)) + self.shortcut(x))


@register_model("float-cnn", summary="Real-valued twin of bnn-small (conv-BN-ReLU residual blocks); distillation teacher",
                paper="baseline / KD teacher for ReActNet-style training")
class FloatCnn(Module):
    """See the module docstring. ``widths``: output channels of the stem and of each block."""

    def __init__(self, widths=(32, 32, 64, 128, 128), num_classes: int = 10, in_channels: int = 1):
        widths = [int(w) for w in widths]
        if len(widths) < 2:
            raise InputError(f"widths needs the stem width and at least one block width, got {widths}")
        self.stem = Conv2d(in_channels, widths[0], 3, padding=1)
        self.stem_norm = BatchNorm(widths[0])
        self.blocks = ModuleList(
            FloatBlock(c_in, c_out, 2 if c_out > c_in else 1) for c_in, c_out in zip(widths, widths[1:])
        )
        self.classifier = Linear(widths[-1], num_classes)

    @classmethod
    def default_recipe(cls) -> dict:
        """A short, standard float recipe: Adam, lr 2e-3 with cosine annealing, weight decay on the
        kernels, light label smoothing, crop + flip."""
        return {"optimizer": "adam", "lr": 2e-3, "schedule": "cosine", "epochs": 5, "batch_size": 128,
                "weight_decay": 5e-5, "decay_rule": "ndim>1", "label_smoothing": 0.05, "crop_padding": 2, "flip": True}

    def forward(self, x):
        x = F.relu(self.stem_norm(self.stem(x)))
        for block in self.blocks:
            x = block(x)
        return self.classifier(F.global_avg_pool(x))
