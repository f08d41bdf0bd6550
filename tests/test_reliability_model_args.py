"""Model arguments mean what they say: one KEY=VALUE parser, values read as each argument's declared type.

``binary_weights=False`` used to be the text "False" (a true value); ``=maybe`` was accepted. The same
parser serves ``train --model-arg``, ``summary --model-arg`` and ``sweep --set model_args.NAME``.
"""

import json

import pytest
from typer.testing import CliRunner

import numbnn.io
from numbnn.cli.main import app
from numbnn.errors import InputError
from numbnn.models.model_args import INTS, coerce, parse_model_args, split_pair
from numbnn.sweep import parse_overrides
from numbnn.sweep.spec import parse_spec
from cli_checks import assert_error_line


def assert_error_line_among(result, *fragments):
    """One ``error:`` line among the command's other stderr output."""
    assert_error_line(result, *fragments, alone=False)

runner = CliRunner()
TINY_REACTNET = ["--model-arg", "widths=8,8,8,8,8,8"]
SMALL = ["--epochs", "1", "--limit", "32", "--test-limit", "10", "--batch-size", "32"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("text, value", [
    ("False", False), ("false", False), ("no", False), ("0", False), ("off", False), ("NO", False),
    ("True", True), ("true", True), ("yes", True), ("1", True), ("on", True),
])
def test_booleans_from_text(text, value):
    assert coerce(text, bool, "x") is value


@pytest.mark.parametrize("text, kind", [
    ("maybe", bool), ("", bool), ("2", bool), ("[]", bool),
    ("3.5", int), ("true", int), ("", int), ("1e3", int),
    ("nan", float), ("inf", float), ("-inf", float), ("two", float),
    ("", INTS), ("abc", INTS), ("[16, true]", INTS), ("16,,32", INTS), ("[16, 32.5]", INTS), ("[1", INTS),
])
def test_text_that_does_not_fit_the_declared_type_is_refused(text, kind):
    with pytest.raises(InputError, match="expected"):
        coerce(text, kind, "arg")


@pytest.mark.parametrize("value, kind, expected", [
    ("3", int, 3), ("2", float, 2.0), ("2.5", float, 2.5), ("16,32", INTS, [16, 32]), ("[16, 32]", INTS, [16, 32]),
    (True, bool, True), (3, float, 3.0), ([8, 16], INTS, [8, 16]), ("rpc", str, "rpc"),
])
def test_values_that_fit(value, kind, expected):
    result = coerce(value, kind, "arg")
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("value, kind", [(1, bool), (2.0, int), (True, int), (True, float), ([8, 2.5], INTS),
                                         ([], INTS), (3, str)])
def test_typed_values_of_the_wrong_type_are_refused(value, kind):
    with pytest.raises(InputError, match="expected"):
        coerce(value, kind, "arg")


def test_one_splitter_for_every_command():
    assert split_pair(" widths = 8,16 ", "--model-arg") == ("widths", "8,16")
    for bad in ("widths", "=8", ""):
        with pytest.raises(InputError, match="KEY=VALUE"):
            split_pair(bad, "--set")
    with pytest.raises(InputError, match="given twice"):
        parse_model_args("bnn-small", ["head=pool", "head=flatten"])
    assert parse_model_args("bnn-small", ["head=pool", "head=pool"]) == {"head": "pool"}


def test_summary_builds_real_weights_for_binary_weights_false():
    def binary_params(value):
        result = invoke("summary", "--model", "reactnet-a", *TINY_REACTNET, "--model-arg", f"binary_weights={value}",
                        "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout.strip().splitlines()[-1])["total"]["binary_params"]

    assert binary_params("False") == binary_params("no") == 0
    assert binary_params("true") > 0
    assert_error_line_among(invoke("summary", "--model", "reactnet-a", "--model-arg", "binary_weights=maybe"),
                          "binary_weights", "expected true or false", "'maybe'")


def test_sweep_set_uses_the_same_types():
    spec = {"defaults": {"model": "reactnet-a", "epochs": 1, "model_args": {"widths": [8] * 6}}, "grid": {"seed": [0]}}
    run = parse_spec(spec, overrides=parse_overrides(["model_args.binary_weights=False"])).runs[0]
    assert run.model_args["binary_weights"] is False
    run = parse_spec(spec, overrides=parse_overrides(["model_args.latent_init=1"])).runs[0]
    assert run.model_args["latent_init"] == 1.0 and isinstance(run.model_args["latent_init"], float)
    with pytest.raises(InputError, match="expected true or false, got 'maybe'"):
        parse_spec(spec, overrides=parse_overrides(["model_args.binary_weights=maybe"]))
    toml_string = {**spec, "defaults": {**spec["defaults"], "model_args": {"widths": [8] * 6, "binary_weights": 1}}}
    with pytest.raises(InputError, match="binary_weights: expected true or false"):
        parse_spec(toml_string)


def test_train_binary_weights_false_trains_real_weights_and_resume_accepts_the_same_args(tmp_path):
    out = tmp_path / "run.h5"
    result = invoke("train", "--model", "reactnet-a", *TINY_REACTNET, "--model-arg", "binary_weights=False", *SMALL,
                    "--out", out)
    assert result.exit_code == 0, result.output
    args = numbnn.io.load_checkpoint(out).config["args"]
    assert args["binary_weights"] is False and args["widths"] == [8] * 6

    again = invoke("train", "--resume", out, "--epochs", "2", "--model-arg", "binary_weights=no",
                   "--model-arg", "widths=[8, 8, 8, 8, 8, 8]")
    assert again.exit_code == 0, again.output
    assert numbnn.io.load_checkpoint(out).epoch == 2

    changed = invoke("train", "--resume", out, "--epochs", "3", "--model-arg", "binary_weights=true")
    assert_error_line_among(changed, "binary_weights=True", "differs from the resumed checkpoint's binary_weights=False")
    assert_error_line_among(invoke("train", "--model", "reactnet-a", "--model-arg", "binary_weights=maybe", *SMALL),
                          "expected true or false")


@pytest.mark.parametrize("command", [
    ["summary", "--model", "bnn-small", "--model-arg", "widths=[100000,100000,100000]"],
    ["train", "--model", "bnn-small", "--model-arg", "widths=100000,100000,100000", *SMALL],
    ["train", "--model", "pokebnn", "--model-arg", "stem_widths=4096,65536", *SMALL],
])
def test_a_model_that_cannot_fit_in_memory_is_refused_with_the_figure(command):
    assert_error_line_among(invoke(*command), "would need about", "GiB to train", "more than this machine's")


def test_sweep_refuses_a_model_that_cannot_fit_before_running_anything():
    spec = {"defaults": {"model": "bnn-small", "epochs": 1}, "grid": {"seed": [0]}}
    with pytest.raises(InputError, match="would need about .* GiB"):
        parse_spec(spec, overrides=parse_overrides(["model_args.widths=[100000,100000,100000]"]))


def test_the_default_models_pass_the_memory_check():
    from numbnn.models import available_models
    from numbnn.models.model_args import check_model_args

    for spec in available_models():
        assert check_model_args(spec.name, {}) == {}
