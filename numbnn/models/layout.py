"""Layout rules that several of the models share, written once.

- :func:`resnet_stages`: the Bi-Real / ResNet-18 stage layout FTBNN and RB-Net use: ``blocks[i]``
  blocks of width ``widths[i]``, the first block of every stage after the first with stride 2.
- :func:`growth_blocks` and :func:`head_features`: the small baselines' layout (bnn-small, float-cnn):
  one block per consecutive pair of widths, stride 2 exactly where the width grows, then a pooled or
  flattened head.
- :data:`BINARY_RECIPE`: the one recipe every binary model trains with unless its own proxy runs
  justify a difference (its comment gives the figures that chose it).
"""

from numbnn.errors import InputError
from numbnn.nn import ModuleList

# ReActNet's optimiser (Adam, lr decaying linearly to 0, no weight decay on the binary network; arXiv
# 2003.03488 sec. 4.1) at a small-image scale: batch 64, lr 2e-3, label smoothing 0.1, no augmentation.
# Chosen on reactnet-a: 3 x 20,000-image proxies gave 85.2% test accuracy against 78.4% for lr 1e-3 /
# batch 128 / no smoothing with Kaiming-scale latent weights (the latent scale is the layers' default
# now, numbnn.nn.init.BINARY_LATENT_INIT). Distillation (ReActNet's loss, sec. 4.1: soft cross-entropy to
# a real-valued teacher's softmax) from the shipped resnet-20 (94.06%): on 10,000-image proxies it gave
# 77.72% (1 epoch) and 79.85% (2 epochs) against 76.49% and 79.19% without; with the teacher's targets
# computed once on the training images ("once") 77.45% and 79.59%, for one teacher pass in total instead
# of one per epoch (benchmarks/results/proxies-reactnet-a-teacher.json). A larger batch or lr did not help
# there (batch 128 / lr 2.8e-3: 73.43%; lr 4e-3: 76.44%).
# No augmentation: these networks underfit FashionMNIST on a CPU budget (train accuracy below test
# accuracy after 11 epochs with a 2-pixel crop and flip), so augmentation only slowed them down. 3 epochs
# of reactnet-a on the full set: 88.77% with crop + flip, 89.99% with flip only, 90.82% with neither;
# one epoch on 10,000 images (`python3 benchmarks/proxies.py --label augmentation-none --models bnn-small
# ftbnn rbnet pokebnn -- --crop-padding 0 --no-flip`, against the same without the options): bnn-small
# 74.71 -> 77.89%, ftbnn 78.53 -> 83.39%, rbnet 77.59 -> 83.40%, pokebnn 77.13 -> 80.93%
# (benchmarks/results/proxies-augmentation-*.json). reactnet-a, the default command's model, runs its
# own epoch count (its default_recipe says why).
NO_TEACHER = "none"  # a recipe's or ``--teacher``'s value for training on the labels, without distillation
BINARY_RECIPE = {"optimizer": "adam", "lr": 2e-3, "schedule": "linear", "epochs": 8, "batch_size": 64,
                 "weight_decay": 0.0, "label_smoothing": 0.1, "crop_padding": 0, "flip": False,
                 "teacher": "resnet-20", "teacher_targets": "once"}
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
