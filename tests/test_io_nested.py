"""numbnn.io.nested: nested state dicts survive an HDF5 round trip exactly (types, dtypes, order, keys)."""

import math

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numbnn.errors import CheckpointError, InputError
from numbnn.io import read_nested, write_nested
from numbnn.io.nested import escape_name, unescape_name


def assert_identical(expected, actual, where="root"):
    """Equal values *and* equal types all the way down (1 vs 1.0 vs True vs np.int64(1) all differ)."""
    assert type(actual) is type(expected), f"{where}: {type(expected).__name__} became {type(actual).__name__}"
    if isinstance(expected, dict):
        assert list(actual) == list(expected), f"{where}: keys or their order changed"
        for key in expected:
            assert_identical(expected[key], actual[key], f"{where}/{key}")
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected), where
        for i, (e, a) in enumerate(zip(expected, actual)):
            assert_identical(e, a, f"{where}[{i}]")
    elif isinstance(expected, np.ndarray | np.generic):
        native = np.asarray(expected).astype(expected.dtype.newbyteorder("="))  # byte order becomes native
        assert actual.dtype == native.dtype and np.shape(actual) == native.shape, where
        assert np.asarray(actual).tobytes() == native.tobytes(), where  # bit-exact, NaN payloads included
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(actual), where  # JSON keeps NaN but not its sign or payload
    elif isinstance(expected, float):
        assert actual == expected and math.copysign(1, actual) == math.copysign(1, expected), where  # -0.0 too
    else:
        assert actual == expected, where


def round_trip(tmp_path, value):
    path = tmp_path / "nested.h5"
    with h5py.File(path, "w", track_order=True) as file:
        write_nested(file.create_group("g", track_order=True), value)
    with h5py.File(path, "r") as file:
        return read_nested(file["g"])


keys = st.text(min_size=1, max_size=8)  # any unicode: "/", ".", "..", "%", NUL included
dtypes = st.sampled_from(["bool", "int8", "uint16", "int32", "int64", "float16", "float32", "float64",
                          "complex64", ">f4", "<i8", "S3"])
arrays = dtypes.flatmap(lambda dt: hnp.arrays(np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                                                              max_side=3)))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**100), 2**100), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.binary(max_size=20),
    st.sampled_from([np.float32(1.5), np.int64(-3), np.bool_(True), np.uint8(255), np.float64("nan")]),
)
values = st.recursive(
    st.one_of(scalars, arrays),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=40)
@given(st.dictionaries(keys, values, max_size=5))
def test_round_trip_is_exact(tmp_path_factory, state):
    assert_identical(state, round_trip(tmp_path_factory.mktemp("n"), state))


def test_optimizer_like_state_round_trip(tmp_path):
    state = {
        "groups": {"0": {"lr": 0.1, "betas": np.array([0.9, 0.999]), "nesterov": True, "num_params": 2,
                         "weight_decay": 0.0, "schedule": None, "name": "conv"}},
        "state": {"0": {"step": 7, "exp_avg": np.full((3, 3), 0.25, np.float32)}, "1": {}},
        "base_lrs": [0.1, 0.01],
        "huge": "x" * 40000,  # beyond the attribute size budget: stored as a dataset
        "long_list": list(range(5000)),
    }
    assert_identical(state, round_trip(tmp_path, state))


def test_escaping_is_reversible_and_never_yields_reserved_names():
    for key in ["a.b", ".", "..", ".keys", ".kind", "a/b", "%2F", "%", "\0", "x%25y", "é/ü"]:
        name = escape_name(key)
        assert "/" not in name and "\0" not in name and not name.startswith(".")
        assert unescape_name(name) == key


@pytest.mark.parametrize("bad,message", [
    ({"": 1}, "non-empty strings"),
    ({1: 2}, "non-empty strings"),
    ({"a": {3}}, "/a: cannot store a value of type set"),
    ({"a": [1, object()]}, "/a/1: cannot store"),
    ({"a": np.array(["text"])}, "dtype <U4 cannot be stored"),
    ({"a": np.array([None], dtype=object)}, "dtype object cannot be stored"),
])
def test_unstorable_values_are_input_errors(tmp_path, bad, message):
    with h5py.File(tmp_path / "x.h5", "w") as file, pytest.raises(InputError, match=message):
        write_nested(file.create_group("g"), bad)


def test_malformed_groups_are_checkpoint_errors(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as file:
        write_nested(file.create_group("ok"), {"a": 1})
        file.create_group("no_keys")
        file.create_group("lies").attrs[".keys"] = '["missing"]'
        file.create_group("not_json").attrs[".keys"] = "[1, 2"
        group = file.create_group("soft")
        group.attrs[".keys"] = '["x"]'
        group["x"] = h5py.SoftLink("/ok")
        group = file.create_group("unknown_kind")
        group.attrs[".keys"] = '["x"]'
        group.create_dataset("x", data=[1.0])
        group["x"].attrs[".kind"] = "pickle"
    with h5py.File(path, "r") as file:
        assert read_nested(file["ok"]) == {"a": 1}
        for name, message in [("no_keys", "lacks the attribute '.keys'"), ("lies", "lists 'missing'"),
                              ("not_json", "malformed entry"), ("soft", "SoftLink, not data"),
                              ("unknown_kind", "unknown kind 'pickle'")]:
            with pytest.raises(CheckpointError, match=message):
                read_nested(file[name])
