"""Every binary model of the zoo trains by the same setup: the shared recipe, small latent weights,
real-weight step 1 (``binary_weights=False``) and so the two-step recipe."""

import numpy as np
import pytest

from numbnn.models import build_model
from numbnn.models.layout import BINARY_RECIPE
from numbnn.nn import BinaryConv2d
from numbnn.nn.init import BINARY_LATENT_INIT
from numbnn.train import recipes, run
from numbnn.train.config import model_recipe

# Small versions of each binary model, so a two-step run takes a second or two.
SMALL = {
    "reactnet-a": {"widths": [8, 16, 32]},
    "bnn-small": {"widths": [8, 8, 16]},
    "ftbnn": {"widths": [8, 16], "blocks": [1, 1], "groups": 2},
    "rbnet": {"widths": [8, 16], "blocks": [1, 1]},
    "pokebnn": {"widths": [8, 16], "blocks": [1, 1], "stem_widths": [8, 16]},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_shared_recipe_and_latent_scale(name):
    recipe = model_recipe(name)
    for key in ("optimizer", "schedule", "label_smoothing", "crop_padding", "flip"):
        assert recipe[key] == BINARY_RECIPE[key], key
    # reactnet-a, the default command's model, runs as many epochs as its 15-minute budget holds
    assert recipe["epochs"] == (9 if name == "reactnet-a" else BINARY_RECIPE["epochs"])
    # a model may take smaller batches, never a different learning rate per image
    assert recipe["lr"] / recipe["batch_size"] == pytest.approx(BINARY_RECIPE["lr"] / BINARY_RECIPE["batch_size"])
    convs = [m for m in build_model(name, **SMALL[name]).modules() if isinstance(m, BinaryConv2d)]
    assert convs
    for conv in convs:  # std of the latent weights: latent_init x Kaiming's sqrt(2 / fan_in)
        kh, kw = conv.kernel_size
        fan_in = kh * kw * conv.in_channels // conv.groups
        assert conv.weight.data.std() < 2 * BINARY_LATENT_INIT * np.sqrt(2 / fan_in)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_step1_model_has_real_weights_and_the_same_entries(name):
    model = build_model(name, **SMALL[name])
    step1 = recipes.step1_model(model)
    convs1 = [m for m in step1.modules() if isinstance(m, BinaryConv2d)]
    assert convs1 and all(not c.binarize_weights and c.weight_bits == 32 for c in convs1)
    assert all(c.binarize_weights for c in model.modules() if isinstance(c, BinaryConv2d))
    assert recipes.carry_over(step1, model) == list(step1.state_dict())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_two_step_recipe_runs_for_every_binary_model(name, tmp_path):
    options = {"epochs": 2, "recipe": "two-step", "limit": 32, "test_limit": 20, "batch_size": 16}
    outcome = run.train(name, options=options, model_args=SMALL[name], out=tmp_path / "run.h5", progress=False)
    history = outcome.result.history
    assert [record["step"] for record in history] == [1, 2]
    assert history[0]["weight_flips"] is None  # step 1: real weights, nothing binarized
    assert 0 < history[1]["weight_flips"] < 1
