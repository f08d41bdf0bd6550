"""The training loop: exact resume (epoch boundary and mid-epoch, after a real SIGINT), divergence
handling that keeps the last checkpoint, the recipe hook, history and evaluation.

A narrow bnn-small (widths 8-8-16) on a few dozen FashionMNIST images keeps every run well under a second.
"""

import os
import signal

import numpy as np
import pytest

import numbnn.io
from numbnn.errors import CheckpointError, InputError, TrainingDivergedError, UnknownModelError
from numbnn.train import run
from numbnn.train.config import TrainConfig, make_config, model_recipe
from numbnn.train.float_evaluation import evaluate
from numbnn.train.loop import fit

TINY = {"widths": (8, 8, 16)}
BASE = {"limit": 48, "test_limit": 40, "batch_size": 16, "seed": 3}


def _train(path, **options):
    return run.train("bnn-small", options={**BASE, **options}, model_args=TINY, out=path, progress=False)


def _weights(path):
    return numbnn.io.load_checkpoint(path).state


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name]), name


def _interrupt_at(epoch, step, signum=signal.SIGINT):
    """An after_step hook that sends this process a real signal after the given optimizer step."""

    def hook(e, s):
        if (e, s) == (epoch, step):
            os.kill(os.getpid(), signum)

    return hook


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Two uninterrupted epochs (linear decay to 0, crop + flip): the reference every resume must hit."""
    path = tmp_path_factory.mktemp("straight") / "run.h5"
    outcome = _train(path, epochs=2)
    return path, outcome


def test_uninterrupted_run_records_history_and_checkpoint(straight):
    path, outcome = straight
    result = outcome.result
    assert result.epochs_completed == 2 and not result.interrupted
    assert [h["epoch"] for h in result.history] == [1, 2]
    for record in result.history:
        assert record["images"] == 48 and 0.0 <= record["test_accuracy"] <= 1.0
        assert record["seconds"] > 0 and record["images_per_s"] > 0 and np.isfinite(record["train_loss"])
    assert result.history[1]["lr"] < result.history[0]["lr"]  # linear decay towards 0
    assert all(0 < record["weight_flips"] < 1 for record in result.history)  # the binary weights learn
    checkpoint = numbnn.io.load_checkpoint(path)
    assert checkpoint.epoch == 2 and checkpoint.history == result.history
    assert checkpoint.extra["train_config"]["limit"] == 48


def test_checkpoint_reevaluates_to_the_reported_accuracy(straight):
    path, outcome = straight
    from numbnn.train.data import load_split

    model = numbnn.io.load(path)
    again = evaluate(model, *load_split("test", 40), TrainConfig.eval_batch_size)
    assert again.accuracy == outcome.result.test_accuracy


def test_same_seed_gives_identical_weights(straight, tmp_path):
    _train(tmp_path / "again.h5", epochs=2)
    _assert_same_weights(_weights(straight[0]), _weights(tmp_path / "again.h5"))


def test_different_seed_gives_different_weights(straight, tmp_path):
    _train(tmp_path / "other.h5", epochs=2, seed=4)
    assert not np.array_equal(_weights(straight[0])["classifier.weight"], _weights(tmp_path / "other.h5")["classifier.weight"])


def test_sigint_at_an_epoch_end_then_resume_is_bit_identical(straight, tmp_path):
    path = tmp_path / "run.h5"
    first = run.train("bnn-small", options={**BASE, "epochs": 2}, model_args=TINY, out=path, progress=False,
                      after_step=_interrupt_at(0, 2))  # step 2 is the last of 3 in epoch 1
    assert first.result.interrupted and first.result.epochs_completed == 1 and first.result.step == 0
    assert numbnn.io.load_checkpoint(path).epoch == 1
    resumed = run.train(resume=path, progress=False)
    assert resumed.result.epochs_completed == 2 and not resumed.result.interrupted
    _assert_same_weights(_weights(straight[0]), _weights(path))
    assert [h["test_accuracy"] for h in resumed.result.history] == [h["test_accuracy"] for h in straight[1].result.history]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_epoch_then_resume_is_bit_identical(straight, tmp_path, signum):
    path = tmp_path / "run.h5"
    first = run.train("bnn-small", options={**BASE, "epochs": 2}, model_args=TINY, out=path, progress=False,
                      after_step=_interrupt_at(1, 0, signum))
    assert first.result.interrupted and (first.result.epochs_completed, first.result.step) == (1, 1)
    assert numbnn.io.load_checkpoint(path).extra["step"] == 1
    run.train(resume=path, progress=False)
    _assert_same_weights(_weights(straight[0]), _weights(path))


def test_one_epoch_then_resume_for_a_second_equals_two_straight(tmp_path):
    # The run's plan may be extended on resume; with a constant rate nothing else depends on the total.
    _train(tmp_path / "straight.h5", epochs=2, schedule="constant")
    _train(tmp_path / "split.h5", epochs=1, schedule="constant")
    assert numbnn.io.load_checkpoint(tmp_path / "split.h5").epoch == 1
    run.train(resume=tmp_path / "split.h5", options={"epochs": 2}, progress=False)
    _assert_same_weights(_weights(tmp_path / "straight.h5"), _weights(tmp_path / "split.h5"))


def test_a_temporary_left_by_a_killed_writer_is_cleaned_up(tmp_path):
    stale = tmp_path / ".run.h5.tmp-999999999-dead"  # no process has this id
    stale.write_bytes(b"half a checkpoint")
    _train(tmp_path / "run.h5", epochs=1, limit=16)
    assert not stale.exists() and (tmp_path / "run.h5").is_file()


def test_save_every_skips_intermediate_epochs_but_always_saves_the_last(tmp_path):
    saved = []
    original = numbnn.io.save

    def spy(model, path, **kwargs):
        saved.append(kwargs["epoch"])
        return original(model, path, **kwargs)

    numbnn.io.save = spy
    try:
        _train(tmp_path / "run.h5", epochs=3, save_every=2, limit=32)
    finally:
        numbnn.io.save = original
    assert saved == [2, 3]


def test_non_finite_loss_stops_naming_epoch_and_step_and_keeps_the_last_checkpoint(tmp_path):
    from numbnn.train.data import load_split

    path = tmp_path / "run.h5"
    _train(path, epochs=1)
    before = path.read_bytes()
    state = run.read_training_state(path)

    def poison(epoch, step):
        if (epoch, step) == (1, 1):
            state.model.classifier.weight.data[...] = np.nan

    with pytest.raises(TrainingDivergedError, match=r"epoch 2, step 3/3"):
        fit(state.model, state.config.replace(epochs=2), load_split("train", 48), load_split("test", 40),
            checkpoint=str(path), resume=state, progress=False, after_step=poison)
    assert path.read_bytes() == before  # untouched: still the good epoch-1 checkpoint


def test_non_finite_weights_are_never_saved(tmp_path):
    def poison(epoch, step):
        if step == 2:  # the last step of the epoch: no later loss would notice
            model.stem_norm.running_var[...] = np.inf

    from numbnn.models import build_model
    from numbnn.train.data import load_split

    model = build_model("bnn-small", **TINY)
    with pytest.raises(TrainingDivergedError, match="stem_norm.running_var"):
        fit(model, make_config("bnn-small", **BASE, epochs=1), load_split("train", 48), None,
            checkpoint=str(tmp_path / "run.h5"), progress=False, after_step=poison)
    assert not (tmp_path / "run.h5").exists()


def test_distillation_from_a_teacher_checkpoint(tmp_path):
    teacher = run.train("float-cnn", options={**BASE, "epochs": 1}, model_args=TINY, out=tmp_path / "t.h5", progress=False)
    student = _train(tmp_path / "s.h5", epochs=1, teacher=teacher.checkpoint)
    assert np.isfinite(student.result.history[0]["train_loss"])
    assert numbnn.io.load_checkpoint(tmp_path / "s.h5").extra["train_config"]["teacher"] == teacher.checkpoint


def test_recipe_hook_sits_between_defaults_and_options():
    recipe = model_recipe("float-cnn")
    assert recipe["schedule"] == "cosine"
    config = make_config("float-cnn", lr=0.01, epochs=None)
    assert config.lr == 0.01 and config.schedule == "cosine" and config.epochs == recipe["epochs"]
    assert make_config(None).optimizer == TrainConfig().optimizer


def test_a_recipe_with_an_unknown_key_fails_loudly(monkeypatch):
    from numbnn.models.bnn_small import BnnSmall

    monkeypatch.setattr(BnnSmall, "default_recipe", classmethod(lambda cls: {"learning_rate": 1.0}))
    with pytest.raises(InputError, match="learning_rate"):
        make_config("bnn-small")


@pytest.mark.parametrize(
    "options, match",
    [
        ({"epochs": -1}, "epochs"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": float("nan")}, "lr"),
        ({"optimizer": "adamax"}, "optimizer 'adamax'"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"limit": 0}, "limit"),
    ],
)
def test_bad_settings_raise_input_error(options, match):
    with pytest.raises(InputError, match=match):
        make_config("bnn-small", **options)


def test_unknown_model_suggests_the_closest():
    with pytest.raises(UnknownModelError, match="did you mean 'bnn-small'"):
        make_config("bnn-smal")


def test_resume_refuses_changed_settings_and_finished_runs(straight):
    with pytest.raises(InputError, match="cannot change lr"):
        run.train(resume=straight[0], options={"lr": 0.5}, progress=False)
    with pytest.raises(InputError, match="already finished 2 epoch"):
        run.train(resume=straight[0], progress=False)
    with pytest.raises(InputError, match="does not match"):
        run.train("float-cnn", resume=straight[0], progress=False)


def test_a_plain_model_file_is_not_resumable(tmp_path):
    from numbnn.models import build_model

    numbnn.io.save(build_model("bnn-small", **TINY), tmp_path / "plain.h5")
    with pytest.raises(CheckpointError, match="not a resumable training checkpoint"):
        run.train(resume=tmp_path / "plain.h5", progress=False)


def test_flipped_fraction_counts_sign_changes_of_binarized_weights_only():
    from numbnn.models import build_model
    from numbnn.train.loop import binary_weight_signs, flipped_fraction

    model = build_model("bnn-small", widths=(8, 8, 16))
    before = binary_weight_signs(model)
    assert len(before) == 2 and sum(s.size for s in before) == 8 * 9 * 8 + 16 * 9 * 8  # the two binary convs
    assert flipped_fraction(before, binary_weight_signs(model)) == 0
    model.blocks[1].conv.weight.data[:4] *= -1  # 4 of 16 output channels of the second conv
    assert flipped_fraction(before, binary_weight_signs(model)) == pytest.approx(4 * 9 * 8 / (8 * 9 * 8 + 16 * 9 * 8))
    assert flipped_fraction(*[binary_weight_signs(build_model("float-cnn"))] * 2) is None


def test_package_names_stay_the_objects_once_every_submodule_is_loaded():
    """A submodule named like one of numbnn.train's names would replace that name on first import."""
    import types

    import numbnn.train

    for name in numbnn.train.__all__:
        assert not isinstance(getattr(numbnn.train, name), types.ModuleType), name
