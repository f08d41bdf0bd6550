"""Distillation teachers: shipped names resolve only to files that match their manifest; the "once"
targets are the teacher's softmax of the un-augmented images; the binary recipe distils by default."""

import hashlib
import json
import shutil

import numpy as np
import pytest

import numbnn.io
from numbnn.errors import ChecksumError, InputError
from numbnn.progress import ProgressBar
from numbnn.train import run
from numbnn.train.config import make_config
from numbnn.train.data import BatchIterator, load_split
from numbnn.train.loop import predict_softmax, teacher_targets_once
from numbnn.train.teachers import NO_TEACHER, TEACHERS_DIR, resolve_teacher, shipped_teachers

TINY = {"widths": (8, 8, 16)}
BASE = {"limit": 48, "test_limit": 40, "batch_size": 16, "seed": 3, "epochs": 1}


@pytest.fixture
def teachers_copy(tmp_path):
    """A copy of data/teachers that a test may damage."""
    directory = tmp_path / "teachers"
    shutil.copytree(TEACHERS_DIR, directory)
    return directory


def test_a_shipped_name_resolves_to_its_verified_file():
    path = resolve_teacher("resnet-20")
    entry = shipped_teachers()["resnet-20"]
    assert path == TEACHERS_DIR / "resnet-20.h5"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]


def test_an_existing_path_wins_over_the_names(tmp_path):
    path = tmp_path / "resnet-20"
    path.write_bytes(b"not checked here: numbnn.io.load reports bad files")
    assert resolve_teacher(str(path)) == path


def test_an_altered_shipped_teacher_is_refused(teachers_copy):
    with open(teachers_copy / "resnet-20.h5", "r+b") as file:
        file.seek(4096)
        byte = file.read(1)
        file.seek(4096)
        file.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ChecksumError, match="sha256"):
        resolve_teacher("resnet-20", teachers_copy)


def test_a_missing_shipped_file_or_an_unknown_name_is_an_input_error(teachers_copy):
    (teachers_copy / "resnet-20.h5").unlink()
    with pytest.raises(InputError, match="missing"):
        resolve_teacher("resnet-20", teachers_copy)
    with pytest.raises(InputError, match="shipped: resnet-20"):
        resolve_teacher("resnet-21", teachers_copy)


def test_a_broken_manifest_is_one_clear_error(teachers_copy):
    (teachers_copy / "MANIFEST.json").write_text(json.dumps({"students": {}}))
    with pytest.raises(ChecksumError, match="not a teachers manifest"):
        resolve_teacher("resnet-20", teachers_copy)


def shipped_teacher_and_images(count: int):
    """The shipped resnet-20 in eval mode, the first ``count`` training images, their labels and the
    normalised float batch the teacher sees."""
    teacher = numbnn.io.load(resolve_teacher("resnet-20"))
    teacher.eval()
    images, labels = load_split("train", count)
    x, _ = next(iter(BatchIterator(images, labels, count, shuffle=False)))
    return teacher, images, labels, x


def test_once_targets_are_the_teachers_softmax_of_the_stored_images():
    teacher, images, labels, x = shipped_teacher_and_images(70)
    with ProgressBar(False) as bar:
        targets = teacher_targets_once(teacher, images, 32, bar)
    assert targets.shape == (70, 10)
    np.testing.assert_allclose(targets, predict_softmax(teacher, x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)
    assert (targets.argmax(axis=1) == labels).mean() > 0.8  # a 94% teacher on its own training images


def test_flip_averaged_targets_average_the_teacher_over_each_image_and_its_mirror():
    teacher, images, _, x = shipped_teacher_and_images(40)
    with ProgressBar(False) as bar:
        plain = teacher_targets_once(teacher, images, 16, bar)
        averaged = teacher_targets_once(teacher, images, 16, bar, flip_averaged=True)
    mirrored = predict_softmax(teacher, np.ascontiguousarray(x[:, :, ::-1]))
    np.testing.assert_allclose(averaged, (plain + mirrored) / 2, rtol=1e-5, atol=1e-7)
    assert not np.allclose(averaged, plain, atol=1e-3)  # the mirror is a different input to the teacher
    assert make_config("reactnet-a", teacher_targets="once-flip-averaged").teacher_targets == "once-flip-averaged"


def test_the_binary_recipe_distils_from_the_shipped_teacher_once():
    config = make_config("reactnet-a")
    assert config.teacher == "resnet-20" and config.teacher_targets == "once"


def test_bnn_small_alone_trains_on_the_labels_by_default():
    assert make_config("bnn-small").teacher == NO_TEACHER
    assert {make_config(name).teacher for name in ("ftbnn", "rbnet", "pokebnn", "reactxgb")} == {"resnet-20"}


def test_a_distilled_run_records_its_teacher_and_differs_from_a_plain_one(tmp_path):
    plain = run.train("bnn-small", options=BASE, model_args=TINY, out=tmp_path / "a.h5", progress=False)
    distilled = run.train("bnn-small", options={**BASE, "teacher": "resnet-20", "teacher_targets": "once"},
                          model_args=TINY, out=tmp_path / "b.h5", progress=False)
    saved = numbnn.io.load_checkpoint(tmp_path / "b.h5").extra["train_config"]
    assert saved["teacher"] == "resnet-20" and saved["teacher_targets"] == "once"
    assert plain.result.history[0]["train_loss"] != distilled.result.history[0]["train_loss"]


def test_an_unknown_teacher_targets_mode_is_refused():
    with pytest.raises(InputError, match="teacher_targets"):
        make_config("reactnet-a", teacher_targets="sometimes")


@pytest.fixture
def teacher_images(monkeypatch):
    """The batch sizes the shipped teacher (a ResNet20) runs on, in order."""
    from numbnn.models.resnet import ResNet20

    seen = []
    forward = ResNet20.forward

    def counting_forward(self, x):
        seen.append(len(x.data))
        return forward(self, x)

    monkeypatch.setattr(ResNet20, "forward", counting_forward)
    return seen


def test_two_step_runs_the_teacher_over_the_training_images_once(tmp_path, teacher_images):
    options = {**BASE, "epochs": 2, "recipe": "two-step", "teacher": "resnet-20", "teacher_targets": "once"}
    result = run.train("bnn-small", options=options, model_args=TINY, out=tmp_path / "s.h5", progress=False)
    assert [record["step"] for record in result.result.history] == [1, 2]
    assert sum(teacher_images) == BASE["limit"]  # one pass over the 48 training images, not one per step


def test_once_targets_are_cached_and_a_damaged_cache_file_is_recomputed(teacher_images):
    from numbnn.datasets import cache_dir

    seen = teacher_images
    teacher = numbnn.io.load(resolve_teacher("resnet-20"))
    images, _ = load_split("train", 20)
    with ProgressBar(False) as bar:
        first = teacher_targets_once(teacher, images, 8, bar)
        assert sum(seen) == 20
        again = teacher_targets_once(teacher, images, 8, bar)
        assert sum(seen) == 20 and np.array_equal(first, again)  # read from the cache, bit for bit
        other = teacher_targets_once(teacher, images[:10], 8, bar)
        assert sum(seen) == 30  # other images: another key, another pass
        np.testing.assert_allclose(other, first[:10], rtol=1e-5, atol=1e-7)
        for file in (cache_dir() / "teacher-targets").iterdir():
            file.write_bytes(file.read_bytes()[:600])  # truncated: recomputed, never an error
        assert np.array_equal(teacher_targets_once(teacher, images, 8, bar), first) and sum(seen) == 50
    assert len(list((cache_dir() / "teacher-targets").glob("*.h5"))) == 2
