"""Layout rules that several of the models share, written once.

- :func:`resnet_stages`: the Bi-Real / ResNet-18 stage layout FTBNN and RB-Net use: ``blocks[i]``
  blocks of width ``widths[i]``, the first block of every stage after the first with stride 2.
- :func:`growth_blocks` and :func:`head_features`: the small baselines' layout (bnn-small, float-cnn):
  one block per consecutive pair of widths, stride 2 exactly where the width grows, then a pooled or
  flattened head.
- :data:`REACTNET_RECIPE`: ReActNet's optimiser (Adam, lr 1e-3 decaying linearly to 0, no weight
  decay on the binary network; liuzechun/ReActNet ``mobilenet/2_step2/train.py``) with a small-image
  augmentation of our choosing (2-pixel pad-and-crop, flip; an assumption, not from any of the papers),
  the recipe of every model whose paper's own recipe is not reproduced.
"""

from numbnn.errors import InputError
from numbnn.nn import ModuleList

REACTNET_RECIPE = {"optimizer": "adam", "lr": 1e-3, "schedule": "linear", "epochs": 10, "batch_size": 128,
                   "weight_decay": 0.0, "crop_padding": 2, "flip": True}
HEADS = ("pool", "flatten")


def resnet_stages(widths: list[int], blocks: list[int], in_channels: int, make_block) -> tuple[ModuleList, int]:
    """``make_block(c_in, c_out, stride)`` per block of every stage; returns the blocks and the last width."""
    stages, channels = [], in_channels
    for index, (width, count) in enumerate(zip(widths, blocks)):
        for block in range(count):
            stages.append(make_block(channels, width, 2 if index > 0 and block == 0 else 1))
            channels = width
    return ModuleList(stages), channels


def growth_blocks(widths: list[int], make_block) -> ModuleList:
    """``make_block(c_in, c_out, stride)`` per consecutive pair of widths, stride 2 where the width grows."""
    if len(widths) < 2:
        raise InputError(f"widths needs the stem width and at least one block width, got {widths}")
    return ModuleList(make_block(c_in, c_out, 2 if c_out > c_in else 1) for c_in, c_out in zip(widths, widths[1:]))


def head_features(widths: list[int], head: str, image_size: int) -> int:
    """Inputs of the classifier after :func:`growth_blocks`: the last width (pool), or the flat map size."""
    if head not in HEADS:
        raise InputError(f"head must be 'pool' or 'flatten', got {head!r}")
    side = image_size
    for c_in, c_out in zip(widths, widths[1:]):
        side = -(-side // 2) if c_out > c_in else side
    return widths[-1] if head == "pool" else widths[-1] * side * side
