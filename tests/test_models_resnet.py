"""resnet-20: the CIFAR ResNet's shape and size, its zero-padded shortcut, and a learning step."""

import numpy as np
import pytest

from numbnn.autograd import Tensor
from numbnn.errors import InputError
from numbnn.models import build_model
from numbnn.models.resnet import BasicBlock


def test_resnet20_has_the_papers_size_and_output():
    model = build_model("resnet-20")
    convs = [name for name, _ in model.named_parameters() if name.endswith("weight") and "conv" in name]
    assert len(convs) == 18  # + stem conv + classifier = 20 weighted layers
    assert 0.26e6 < model.num_parameters() < 0.28e6  # He et al. report 0.27M
    assert model(Tensor(np.zeros((3, 28, 28, 1), np.float32))).shape == (3, 10)


def test_growing_block_pads_zero_channels_onto_the_pooled_input():
    block = BasicBlock(2, 4, 2)
    x = np.arange(2 * 4 * 4 * 2, dtype=np.float32).reshape(2, 4, 4, 2)
    short = block.shortcut(Tensor(x)).data
    assert short.shape == (2, 2, 2, 4)
    np.testing.assert_array_equal(short[..., 2:], 0)
    np.testing.assert_allclose(short[0, 0, 0, :2], x[0, :2, :2].mean(axis=(0, 1)))


@pytest.mark.parametrize("args", [{"width": 0}, {"depth": 2.5}, {"width": True}])
def test_bad_arguments_are_refused(args):
    with pytest.raises(InputError):
        build_model("resnet-20", **args)
