"""numbnn.io checkpoints: exact round trips, atomic writes, and hostile files answered with CheckpointError."""

import functools
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbnn
import numbnn.models
from numbnn.errors import CheckpointError, FormatVersionError, InputError
from numbnn.io import (
    FORMAT,
    FORMAT_VERSION,
    atomic_h5,
    cleanup_stale_temps,
    load,
    load_checkpoint,
    restore_rng,
    save,
    write_header,
    write_nested,
)
from numbnn.io.hdf5 import USERBLOCK_SIZE
from test_io_nested import assert_identical


class TinyModel:
    """The model contract io relies on: ``config``, ``state_dict()``, ``load_state_dict()``."""

    def __init__(self, width=3, seed=0, dtype=np.float32):
        rng = np.random.default_rng(seed)
        self.config = {"name": "tiny", "args": {"width": width, "seed": seed}}
        self.arrays = {
            "conv.weight": rng.standard_normal((width, 3, 3, 2)).astype(dtype),
            "blocks.0.bn.running_mean": rng.standard_normal(width).astype(np.float32),
            "blocks.0.bn.num_batches": np.array(7, dtype=np.int64),
            "head.mask": rng.random(4) < 0.5,
        }

    def state_dict(self):
        return {name: array.copy() for name, array in self.arrays.items()}

    def load_state_dict(self, state, strict=True):
        assert strict and set(state) == set(self.arrays)
        for name, array in state.items():
            self.arrays[name][...] = array


def build_tiny(config):
    return TinyModel(config["args"]["width"], seed=99)  # different weights: loading must overwrite them


class FakeOptimizer:
    def __init__(self):
        self.state = {
            "groups": {"0": {"lr": 0.05, "betas": np.array([0.9, 0.999]), "nesterov": False, "num_params": 4},
                       "1": {"lr": 0.0, "betas": np.array([0.9, 0.999]), "nesterov": True, "num_params": 0}},
            "state": {"0": {"step": 12, "exp_avg": np.linspace(-1, 1, 54, dtype=np.float32).reshape(3, 3, 3, 2)}},
            "note": None,
        }

    def state_dict(self):
        return self.state


class FakeScheduler:
    def state_dict(self):
        return {"step": 1234, "base_lrs": [0.1, 0.01], "kind": "cosine"}


def same_state(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a
    )


@pytest.fixture
def saved(tmp_path):
    model, rng = TinyModel(), np.random.default_rng(2024)
    rng.random(5)  # advance: the stored state is mid-stream, not the seed
    path = save(model, tmp_path / "ckpt.h5", optimizer=FakeOptimizer(), scheduler=FakeScheduler(), rng=rng,
                epoch=4, history=[{"epoch": 1, "loss": np.float32(0.25), "test_accuracy": 0.5}],
                extra={"train_config": {"lr": 0.1, "limit": None}}, arrays={"xgb": b'{"trees": []}',
                                                                                "thresholds": np.arange(5)})
    return path, model, rng


# -- round trips -------------------------------------------------------------------------------------------


def test_checkpoint_round_trip_is_exact(saved):
    path, model, rng = saved
    checkpoint = load_checkpoint(path)
    assert checkpoint.config == model.config
    assert same_state(checkpoint.state, model.state_dict())
    assert checkpoint.epoch == 4
    assert checkpoint.history == [{"epoch": 1, "loss": 0.25, "test_accuracy": 0.5}]
    assert checkpoint.extra == {"train_config": {"lr": 0.1, "limit": None}}
    assert checkpoint.arrays["xgb"] == b'{"trees": []}'
    assert np.array_equal(checkpoint.arrays["thresholds"], np.arange(5))
    assert (checkpoint.format_version, checkpoint.numbnn_version) == (FORMAT_VERSION, numbnn.__version__)
    assert_identical(FakeOptimizer().state_dict(), checkpoint.optimizer_state)
    assert_identical(FakeScheduler().state_dict(), checkpoint.scheduler_state)


def test_real_optimizer_and_scheduler_resume_identically(tmp_path):
    """Adam + cosine schedule saved mid-run and restored step exactly like the uninterrupted pair."""
    from numbnn.autograd import Tensor
    from numbnn.optim import Adam, Scheduler, cosine

    def make():
        param = Tensor(np.linspace(-1, 1, 6, dtype=np.float32), requires_grad=True)
        optimizer = Adam([param], lr=0.1)
        return param, optimizer, Scheduler(optimizer, cosine(20))

    def step(param, optimizer, scheduler, i):
        param.grad = np.sin(param.data * (i + 1)).astype(np.float32)
        optimizer.step()
        scheduler.step()

    param, optimizer, scheduler = make()
    for i in range(3):
        step(param, optimizer, scheduler, i)
    save(TinyModel(), tmp_path / "opt.h5", optimizer=optimizer, scheduler=scheduler)
    checkpoint = load_checkpoint(tmp_path / "opt.h5")
    param2, optimizer2, scheduler2 = make()
    param2.data[...] = param.data
    optimizer2.load_state_dict(checkpoint.optimizer_state)
    scheduler2.load_state_dict(checkpoint.scheduler_state)
    for i in range(3, 6):
        step(param, optimizer, scheduler, i)
        step(param2, optimizer2, scheduler2, i)
    assert param2.data.tobytes() == param.data.tobytes()


def test_restored_rng_continues_the_same_stream(saved):
    path, _, rng = saved
    restored = restore_rng(load_checkpoint(path).rng_state)
    assert np.array_equal(restored.random(10), rng.random(10))
    assert np.array_equal(restored.integers(0, 1000, 10), rng.integers(0, 1000, 10))


def test_rng_with_array_state_round_trips(tmp_path):
    rng = np.random.Generator(np.random.MT19937(5))  # its state holds a uint32[624] array
    save(TinyModel(), tmp_path / "mt.h5", rng=rng)
    restored = restore_rng(load_checkpoint(tmp_path / "mt.h5").rng_state)
    assert np.array_equal(restored.random(5), rng.random(5))


def test_invalid_rng_state_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match="invalid RNG state"):
        restore_rng({"bit_generator": "os.system", "state": {}})
    with pytest.raises(CheckpointError, match="invalid RNG state"):
        restore_rng({"bit_generator": "PCG64", "state": {"state": "x", "inc": 1}})


def test_load_rebuilds_with_builder(saved):
    path, model, _ = saved
    loaded = load(path, builder=build_tiny)
    assert same_state(loaded.state_dict(), model.state_dict())


def test_load_looks_up_build_model_lazily(saved, monkeypatch):
    path, model, _ = saved
    calls = []
    monkeypatch.setattr(numbnn.models, "build_model", lambda config: calls.append(config) or build_tiny(config))
    loaded = load(path)
    assert calls == [model.config]
    assert same_state(loaded.state_dict(), model.state_dict())


def test_minimal_checkpoint_has_no_optional_sections(tmp_path):
    save(TinyModel(), tmp_path / "m.h5")
    checkpoint = load_checkpoint(tmp_path / "m.h5")
    assert checkpoint.optimizer_state is checkpoint.rng_state is checkpoint.epoch is checkpoint.history is None
    assert checkpoint.arrays == {}
    with h5py.File(tmp_path / "m.h5", "r") as file:
        assert list(file) == ["state"]
        assert file.attrs["format"] == FORMAT and json.loads(file.attrs["config"])["name"] == "tiny"
        assert file["state/blocks.0.bn.running_mean"].dtype == np.float32  # dotted keys as dataset names


# -- bad arguments to save ------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,message", [
    ({"epoch": -1}, "epoch"),
    ({"epoch": 1.5}, "epoch"),
    ({"history": {"loss": 1}}, "history"),
    ({"history": [{"x": object()}]}, "history: not JSON"),
    ({"extra": [1]}, "extra"),
    ({"rng": 42}, "rng"),
    ({"optimizer": object()}, "optimizer: needs a state_dict"),
    ({"arrays": {"a": [1, 2]}}, "arrays: 'a'"),
])
def test_bad_save_arguments(tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        save(TinyModel(), tmp_path / "x.h5", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_model_without_config_or_into_missing_directory(tmp_path):
    model = TinyModel()
    model.config = None
    with pytest.raises(InputError, match="model: needs a .config"):
        save(model, tmp_path / "x.h5")
    with pytest.raises(InputError, match="does not exist"):
        save(TinyModel(), tmp_path / "no" / "x.h5")


# -- atomic writes ------------------------------------------------------------------------------------------


class ExplodingOptimizer:
    def state_dict(self):
        return {"ok": np.ones(1000), "bad": {1, 2}}  # a set cannot be stored: fails mid-write


def test_failed_save_leaves_previous_file_intact(saved):
    path, model, _ = saved
    before = path.read_bytes()
    with pytest.raises(InputError, match="cannot store a value of type set"):
        save(TinyModel(seed=5), path, optimizer=ExplodingOptimizer())
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # the temporary is gone
    assert same_state(load_checkpoint(path).state, model.state_dict())


def test_interrupt_inside_atomic_h5_leaves_nothing(tmp_path):
    target = tmp_path / "new.h5"
    with pytest.raises(KeyboardInterrupt), atomic_h5(target) as file:
        file["x"] = np.arange(10)
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


KILLED_WRITER = """
import os, signal, sys
import numpy as np
import numbnn._atomic as atomic
from numbnn.io import atomic_h5

def write_then_die(fd, data):  # killed after half of the bytes reached the temporary
    os.write(fd, bytes(data[: len(data) // 2]))
    os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[2] == "bytes":
    atomic._os_write = write_then_die
with atomic_h5(sys.argv[1]) as file:
    file["state"] = np.zeros(100000)
    file.flush()
    if sys.argv[2] == "build":
        os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("when", ["build", "bytes"])
def test_sigkill_mid_write_keeps_old_file_and_temp_is_cleaned(saved, when):
    """Killed while HDF5 builds the file (in memory: nothing on disk) or while its bytes are written."""
    path, model, _ = saved
    before = path.read_bytes()
    result = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path), when], capture_output=True)
    assert result.returncode == -9, result.stderr
    leftovers = [p for p in path.parent.iterdir() if p.name != path.name]
    if when == "build":
        assert leftovers == []
    else:
        assert len(leftovers) == 1 and leftovers[0].name.startswith(f".{path.name}.tmp-")
    assert path.read_bytes() == before
    assert cleanup_stale_temps(path.parent, path.name) == leftovers
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_cleanup_keeps_temporaries_of_live_writers(tmp_path):
    target = tmp_path / "ckpt.h5"
    live = tmp_path / f".ckpt.h5.tmp-{os.getppid()}-abcd"  # our parent process is alive
    live.write_bytes(b"partial")
    with atomic_h5(target) as file:
        file["x"] = 1
        assert cleanup_stale_temps(tmp_path, "ckpt.h5") == []  # the live writer's temporary is kept
    assert live.exists() and target.exists()


# -- hostile files ------------------------------------------------------------------------------------------


def write_crafted(path, *, format_name=FORMAT, version=FORMAT_VERSION, state=True, config='{"name": "tiny"}'):
    """A file with a valid numbnn envelope but chosen content."""
    with atomic_h5(path) as file:
        write_header(file, format_name, version)
        if config is not None:
            file.attrs["config"] = config
        if state is True:
            write_nested(file.create_group("state"), TinyModel().state_dict())
        elif state is not None:
            file["state"] = state
    return path


def test_zero_byte_random_text_and_foreign_hdf5(tmp_path):
    cases = {
        "empty.h5": (b"", "empty file"),
        "random.h5": (np.random.default_rng(0).bytes(5000), "not an HDF5 file"),
        "text.h5": (b"numbnn, but not really\n" * 50, "not an HDF5 file"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(tmp_path / name)
    with h5py.File(tmp_path / "other.h5", "w") as file:  # another program's HDF5 file
        file["data"] = np.arange(3)
    with h5py.File(tmp_path / "other-ub.h5", "w", userblock_size=1024) as file:
        file["data"] = np.arange(3)
    for name in ("other.h5", "other-ub.h5"):
        with pytest.raises(CheckpointError, match="HDF5 file not written by numbnn"):
            load_checkpoint(tmp_path / name)


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "absent.h5")
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_checkpoint(tmp_path)


def test_truncated_at_several_offsets(saved):
    path, _, _ = saved
    good = path.read_bytes()
    for offset in (1, 11, 100, USERBLOCK_SIZE, USERBLOCK_SIZE + 8, len(good) // 2, len(good) - 1):
        path.write_bytes(good[:offset])
        with pytest.raises(CheckpointError, match="truncated|corrupt numbnn header"):
            load_checkpoint(path)
    path.write_bytes(good + b"\0")
    with pytest.raises(CheckpointError, match="1 unexpected bytes"):
        load_checkpoint(path)


def test_flipped_byte_in_data_is_detected(saved):
    path, model, _ = saved
    data = bytearray(path.read_bytes())
    weights = model.state_dict()["conv.weight"].tobytes()
    at = bytes(data).find(weights)  # the raw float32 weights, stored contiguously
    assert at > USERBLOCK_SIZE
    data[at + 5] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(path)


def test_future_format_version(tmp_path):
    path = write_crafted(tmp_path / "future.h5", version=FORMAT_VERSION + 1)
    with pytest.raises(FormatVersionError, match=f"version {FORMAT_VERSION + 1} .* supports \\({FORMAT_VERSION}\\)"):
        load_checkpoint(path)


@pytest.mark.parametrize("kwargs,message", [
    ({"format_name": "numbnn-packed"}, "is a 'numbnn-packed' file, not a numbnn-checkpoint file"),
    ({"version": 0}, "invalid format_version"),
    ({"state": None}, "required group /state is missing"),
    ({"state": np.arange(3)}, "required group /state is missing"),
    ({"config": None}, "malformed model config"),
    ({"config": "{not json"}, "malformed model config"),
    ({"config": '{"args": {}}'}, "malformed model config"),
])
def test_crafted_files_with_valid_envelope(tmp_path, kwargs, message):
    path = write_crafted(tmp_path / "crafted.h5", **kwargs)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_non_numeric_state_entry(tmp_path):
    path = tmp_path / "strings.h5"
    with atomic_h5(path) as file:
        write_header(file, FORMAT, FORMAT_VERSION)
        file.attrs["config"] = '{"name": "tiny"}'
        write_nested(file.create_group("state"), {"conv.weight": "not an array"})
    with pytest.raises(CheckpointError, match="'conv.weight' is not a numeric array"):
        load_checkpoint(path)


def test_valid_envelope_around_garbage(tmp_path):
    """Only a crafted file gets past the checksum with broken HDF5 inside; h5py's error is translated."""
    path = write_crafted(tmp_path / "g.h5")
    body = np.random.default_rng(1).bytes(3000)
    header = b"numbnn-hdf5\n" + json.dumps({"size": USERBLOCK_SIZE + len(body),
                                            "sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n"
    path.write_bytes(header.ljust(USERBLOCK_SIZE, b"\0") + body)
    with pytest.raises(CheckpointError, match="unreadable file"):
        load_checkpoint(path)


@pytest.mark.parametrize("change,message", [
    (lambda m: m.arrays.__setitem__("conv.weight", np.zeros((3, 3, 3, 1), np.float32)),
     r"'conv.weight' has shape \(3, 3, 3, 2\) in the file, the model expects \(3, 3, 3, 1\)"),
    (lambda m: m.arrays.__setitem__("conv.weight", np.zeros((3, 3, 3, 2), np.float64)),
     "'conv.weight' has dtype float32 in the file, the model expects float64"),
    (lambda m: m.arrays.__setitem__("extra.bias", np.zeros(2, np.float32)), "'extra.bias' of the model is missing"),
    (lambda m: m.arrays.pop("head.mask"), "the file has parameter 'head.mask', which the model does not"),
])
def test_state_mismatch_names_the_parameter(saved, change, message):
    path, _, _ = saved

    def builder(config):
        model = TinyModel(config["args"]["width"])
        change(model)
        return model

    with pytest.raises(CheckpointError, match=message):
        load(path, builder=builder)


class ModelWithBlobs(TinyModel):
    """A model that keeps more than arrays (like ReActXGB's trees) through the checkpoint hooks."""

    def __init__(self, *args, blob=b"", **kwargs):
        super().__init__(*args, **kwargs)
        self.blob = blob

    def checkpoint_arrays(self):
        return {"trees": self.blob}

    def load_checkpoint_arrays(self, arrays):
        if not arrays["trees"].startswith(b"{"):
            raise ValueError("not JSON")
        self.blob = arrays["trees"]


def test_model_checkpoint_array_hooks(tmp_path):
    save(ModelWithBlobs(blob=b'{"t": 1}'), tmp_path / "a.h5", arrays={"other": np.arange(2)})
    assert sorted(load_checkpoint(tmp_path / "a.h5").arrays) == ["other", "trees"]
    assert load(tmp_path / "a.h5", builder=lambda config: ModelWithBlobs()).blob == b'{"t": 1}'
    save(ModelWithBlobs(blob=b"garbage"), tmp_path / "b.h5")
    with pytest.raises(CheckpointError, match="ValueError: not JSON"):
        load(tmp_path / "b.h5", builder=lambda config: ModelWithBlobs())


def test_unbuildable_config(saved):
    path, _, _ = saved

    def builder(config):
        raise numbnn.errors.UnknownModelError("unknown model 'tiny'; did you mean 'tinier'?")

    with pytest.raises(CheckpointError, match="cannot rebuild model 'tiny': unknown model 'tiny'; did you mean"):
        load(path, builder=builder)


# -- fuzz: mutated valid files load correctly or raise CheckpointError, nothing else -----------------------


@functools.cache
def good_checkpoint() -> tuple[bytes, dict]:
    directory = Path(tempfile.mkdtemp(prefix="numbnn-fuzz-"))
    path = save(TinyModel(), directory / "good.h5", optimizer=FakeOptimizer(), rng=np.random.default_rng(3),
                epoch=1, history=[{"loss": 1.0}])
    return path.read_bytes(), TinyModel().state_dict()


@settings(max_examples=30)
@given(
    mutation=st.sampled_from(["flip", "truncate", "scribble"]),
    position=st.floats(0, 1, exclude_max=True),
    value=st.integers(1, 255),
    count=st.integers(2, 16),
)
def test_fuzzed_checkpoints(tmp_path_factory, mutation, position, value, count):
    good, state = good_checkpoint()
    data = bytearray(good)
    at = int(position * len(data))
    if mutation == "flip":
        data[at] ^= value
    elif mutation == "truncate":
        del data[at:]
    else:
        data[at:at + count] = struct.pack("B", value) * len(data[at:at + count])
    path = tmp_path_factory.mktemp("fuzz") / "mutated.h5"
    path.write_bytes(bytes(data))
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError:
        return
    assert same_state(checkpoint.state, state)  # loaded: then it must be the original content
