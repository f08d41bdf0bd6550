"""benchmarks/torch_twin.py: the PyTorch twin computes numbnn's network (skipped where torch is not installed)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("torch_twin", ROOT / "benchmarks" / "torch_twin.py")
twin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(twin)

SMALL = {
    "bnn-small": {"widths": [8, 8, 16]},
    "pokebnn": {"widths": [4, 8, 8], "stem_widths": [4, 8]},
    "ftbnn": {"widths": [8, 16], "blocks": [1, 1], "groups": 4},
    "rbnet": {"widths": [8, 16], "blocks": [1, 1]},
}


@pytest.mark.parametrize("name", ["bnn-small", "pokebnn"])
def test_twin_logits_agree_in_training_and_evaluation_mode(name):
    result = twin.agreement(name, SMALL[name])
    assert result["train_max_abs_diff"] < 1e-4 and result["eval_max_abs_diff"] < 1e-4, result
    assert result["train_same_class"] == result["eval_same_class"] == 1.0
    assert result["max_abs_logit"] > 1e-2  # the logits are not trivially 0


@pytest.mark.parametrize("name", ["bnn-small", "ftbnn", "rbnet"])
def test_twin_gradients_agree(name):
    """Straight-through estimators, grouped convs, channel shuffles and RB-Net's centring (a batch mean
    of signs, subtracted through the weights): the same gradients in float64."""
    assert twin.agreement(name, SMALL[name])["grad_max_rel_diff"] < 1e-9


def test_a_wrong_translation_fails_the_check(monkeypatch):
    from numbnn.models import bnn_small

    # a BinaryBlock without its shortcut: the check must see it
    monkeypatch.setitem(twin.BLOCKS, bnn_small.BinaryBlock, lambda t, x: t.activation(t.norm(t.conv(t.threshold.before_sign(x)))))
    result = twin.agreement("bnn-small", SMALL["bnn-small"])
    assert not result["ok"] and result["train_max_abs_diff"] > 1e-3


def test_weights_are_copied_key_for_key_with_conv_layouts_converted():
    model = twin.exercised_model("ftbnn", SMALL["ftbnn"])
    net = twin.build_twin(model)
    twin.copy_weights(model, net)
    state = model.state_dict()
    theirs = net.state_dict()
    assert set(state) == set(theirs)
    for key, array in state.items():
        expected = array.transpose(0, 3, 1, 2) if array.ndim == 4 else array
        np.testing.assert_array_equal(theirs[key].numpy(), expected)


def test_a_class_without_a_translation_is_named():
    from numbnn.nn import Module

    class Unknown(Module):
        def forward(self, x):
            return x

    with pytest.raises(NotImplementedError, match="Unknown"):
        twin.build_twin(Unknown())


def test_numbnn_never_imports_torch():
    offenders = [str(path) for path in (ROOT / "numbnn").rglob("*.py")
                 if any(line.strip().startswith(("import torch", "from torch")) for line in path.read_text().splitlines())]
    assert offenders == []


def test_rounds_that_spread_flag_the_phase():
    """A contender whose slowest round is more than UNSTEADY_SPREAD times its fastest marks the phase
    unsteady, and the summary line names it; steady rounds leave no mark."""
    steady = {"numbnn": {"rounds_s": [0.100, 0.110, 0.105]}, "torch_nchw": {"rounds_s": [0.2, 0.21, 0.2]}}
    spells = {"numbnn": {"rounds_s": [0.107, 0.347, 0.391]}, "torch_nchw": {"rounds_s": [0.31, 0.32, 0.33]}}
    assert twin.round_spreads(spells) == {"numbnn": 3.65, "torch_nchw": 1.06}
    assert twin._unsteady_note({"rounds_spread": twin.round_spreads(steady), "unsteady": False}) == ""
    note = twin._unsteady_note({"rounds_spread": twin.round_spreads(spells), "unsteady": True})
    assert "UNSTEADY" in note and "numbnn rounds x3.65" in note and "torch_nchw" not in note


def test_epoch_per_binary_mac_is_relative_to_the_reference_at_its_batch():
    """Each model's epoch per binary MAC over reactnet-a's at batch 128, from the same run; nothing without
    the reference, and a model not timed at that batch is left out."""
    def row(model, epoch_s, macs, batch="128"):
        return {"model": model, "binary_macs_per_image": macs, "timing": {batch: {"train": {"numbnn_epoch_s": epoch_s}}}}

    rows = [row("reactnet-a", 40.0, 20), row("ftbnn", 60.0, 20), row("pokebnn", 30.0, 5), row("other", 1.0, 1, "64")]
    assert twin.epoch_per_binary_mac(rows) == {"reactnet-a": 1.0, "ftbnn": 1.5, "pokebnn": 3.0}
    assert twin.epoch_per_binary_mac(rows[1:]) == {}
