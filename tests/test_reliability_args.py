"""Bad arguments: every command's numeric options at 0 / negative / NaN, unknown names, wrong model
arguments, NaN/inf inputs, and shapes that do not fit the public functions.

Through the CLI each must end in one clear error and exit code 2, never a traceback. Options that
numbnn validates give one ``error:`` line; the few that typer checks itself (``min=1`` ranges, text
where a number belongs, unknown options) do too through the console script's entry point
(``numbnn.cli.main.run``), while typer's own test runner shows its usage block; both exit 2. In the library each
is an :class:`~numbnn.errors.InputError` (or UnknownModelError) whose message names the argument.
(Cases already in tests/test_cli_train.py, test_cli_summary.py, test_train_loop.py and the kernel
tests are not repeated.)
"""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import naive
import numbnn.functional as F
import numbnn.io
from numbnn.cli.main import app
from numbnn import kernels
from numbnn.autograd import Tensor
from numbnn.errors import InputError, UnknownModelError
from numbnn.inference import compile
from numbnn.inference import load as load_packed
from numbnn.models import available_models, build_model
from cli_checks import assert_error_line


def assert_error_line_among(result, *fragments):
    """One ``error:`` line among the command's other stderr output."""
    assert_error_line(result, *fragments, alone=False)

runner = CliRunner()
TINY = "widths=[8,8,16]"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_usage_error(result, option):
    """typer's own check (a range or a type): exit 2, no traceback, the option named."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert f"Invalid value for '{option}'" in result.stderr, result.stderr


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("args")
    checkpoint = numbnn.io.save(build_model("bnn-small", widths=(8, 8, 16)), directory / "checkpoint.h5")
    packed = compile(numbnn.io.load(checkpoint)).save(directory / "packed.h5")
    images = directory / "images.npy"
    np.save(images, np.zeros((2, 28, 28), np.uint8))
    (directory / "a-directory").mkdir()
    return directory, checkpoint, packed, images


# -- numeric options at 0, negative, NaN, inf ------------------------------------------------------------------

TRAIN_CASES = [
    (["--epochs", 0], "epochs"),
    (["--batch-size", -1], "batch_size"),
    (["--lr", 0], "lr"),
    (["--lr", "nan"], "lr"),
    (["--lr", "inf"], "lr"),
    (["--weight-decay", -1], "weight_decay"),
    (["--weight-decay", "nan"], "weight_decay"),
    (["--label-smoothing", -0.1], "label_smoothing"),
    (["--label-smoothing", 1], "label_smoothing"),
    (["--grad-clip", 0], "grad_clip"),
    (["--grad-clip", -1], "grad_clip"),
    (["--grad-clip", "inf"], "grad_clip"),
    (["--crop-padding", -1], "crop_padding"),
    (["--seed", -1], "seed"),
    (["--limit", 0], "limit"),
    (["--limit", -5], "limit"),
    (["--test-limit", 0], "test_limit"),
    (["--save-every", 0], "save_every"),
    (["--save-every", -2], "save_every"),
    (["--recipe", "two-step", "--epochs", 2, "--step1-epochs", 0], "step1_epochs"),
    (["--recipe", "two-step", "--epochs", 2, "--step1-epochs", 2], "step1_epochs"),
    (["--threads", -1], "threads"),
    (["--threads", 100_000], "threads"),
    (["--schedule", "exponential"], "unknown schedule 'exponential'"),
    (["--recipe", "three-step"], "unknown recipe 'three-step'"),
    (["--optimizer", ""], "unknown optimizer ''"),
    (["--model-arg", "widths=8"], "got [8]"),
    (["--model-arg", "widths=abc"], "widths: expected a list of integers, got 'abc'"),
    (["--model-arg", "widths=[-8,8,16]"], "-8"),
    (["--model-arg", "widths=[8,12]"], "8 -> 12"),
    (["--model-arg", "depth=3"], "has no argument 'depth'"),
    (["--model-arg", "widths"], "KEY=VALUE"),
]


@pytest.mark.parametrize("extra, fragment", TRAIN_CASES, ids=[" ".join(map(str, c[0])) for c in TRAIN_CASES])
def test_train_options(files, extra, fragment):
    directory = files[0]
    # A valid tiny run around the bad option: if the option were accepted, this trains (and the test fails).
    base = ["train", "--model", "bnn-small", "--limit", 32, "--test-limit", 10, "--epochs", 1, "--batch-size", 16,
            "--out", directory / "never.h5"]
    if not any(str(e).startswith("widths") for e in extra):
        base += ["--model-arg", TINY]
    assert_error_line_among(invoke(*base, *extra), fragment)
    assert not (directory / "never.h5").exists()


def test_train_out_naming_a_directory_fails_before_training(files):
    directory = files[0]
    result = invoke("train", "--model", "bnn-small", "--model-arg", TINY, "--limit", 32, "--out", directory / "a-directory")
    assert_error_line_among(result, "--out", "a-directory", "is a directory")
    assert "epoch 1/" not in result.stderr  # refused before any training


def test_export_out_naming_a_directory(files):
    directory, checkpoint, _, _ = files
    assert_error_line_among(invoke("export", checkpoint, "--out", directory / "a-directory"), "a-directory")
    assert_error_line_among(invoke("export", checkpoint, "--out", directory / "images.npy" / "x.h5"), "does not exist")


@pytest.mark.parametrize("extra, fragment", [
    (["--limit", 0], "limit"), (["--limit", -1], "limit"), (["--batch-size", 0], "batch_size"),
    (["--batch-size", -5], "batch_size"), (["--threads", 0], "threads"),
])
@pytest.mark.parametrize("kind", ["checkpoint", "packed", "checkpoint --packed"])
def test_eval_options(files, kind, extra, fragment):
    _, checkpoint, packed, _ = files
    target = [packed] if kind == "packed" else [checkpoint] + (["--packed"] if kind.endswith("--packed") else [])
    assert_error_line_among(invoke("eval", *target, *extra), fragment)


@pytest.mark.parametrize("extra, fragment", [
    (["--input-size", -1], "input size"), (["--input-size", 100_000], "input size"),
    (["--model-arg", "widths=abc"], "widths: expected a list of integers, got 'abc'"), (["--model-arg", "widths=8"], "got [8]"),
])
def test_summary_options(extra, fragment):
    assert_error_line_among(invoke("summary", "--model", "bnn-small", *extra), fragment)


@pytest.mark.parametrize("command, option, value", [
    ("predict", "--top", 0), ("predict", "--top", -3), ("predict", "--batch-size", 0), ("predict", "--batch-size", -1),
    ("bench model", "--repeats", 0), ("bench kernels", "--repeats", -1),
    ("train", "--epochs", "abc"), ("train", "--lr", "fast"), ("eval", "--limit", "1.5"),
])
def test_options_typer_checks_give_a_usage_error_naming_them(files, command, option, value):
    _, checkpoint, packed, images = files
    positional = {"predict": [packed, "--input", images], "bench model": [checkpoint], "bench kernels": [],
                  "train": ["--model", "bnn-small"], "eval": [checkpoint]}[command]
    assert_usage_error(invoke(*command.split(), *positional, option, value), option)


# -- unknown names ------------------------------------------------------------------------------------------------


def _edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


NAMES = sorted(spec.name for spec in available_models())


@st.composite
def one_typo(draw):
    """A registered name with one character deleted, replaced, inserted or upper-cased."""
    name = draw(st.sampled_from(NAMES))
    at = draw(st.integers(0, len(name) - 1))
    letter = draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz-0123456789"))
    kind = draw(st.sampled_from(["delete", "replace", "insert", "upper"]))
    typo = {"delete": name[:at] + name[at + 1:], "replace": name[:at] + letter + name[at + 1:],
            "insert": name[:at] + letter + name[at:], "upper": name[:at] + name[at].upper() + name[at + 1:]}[kind]
    return name, typo


@settings(max_examples=30)
@given(one_typo())
def test_a_one_character_typo_suggests_a_registered_name_one_edit_away(case):
    name, typo = case
    if typo in NAMES or typo == name:
        return
    with pytest.raises(UnknownModelError) as caught:
        build_model(typo)
    suggestion = re.search(r"did you mean '([^']+)'", str(caught.value))
    assert suggestion, str(caught.value)
    # the typo's own source, or another name just as close (then the choice between them is a tie)
    assert suggestion.group(1) == name or _edit_distance(typo.lower(), suggestion.group(1)) <= 1, str(caught.value)


def test_unknown_model_through_every_command_that_takes_one(files):
    _, checkpoint, _, _ = files
    assert_error_line_among(invoke("summary", "--model", "pokebn"), "did you mean 'pokebnn'")
    assert_error_line_among(invoke("train", "--model", "FTBNN", "--limit", 8), "did you mean 'ftbnn'")
    assert_error_line_among(invoke("train", "--model", "no-such-net", "--limit", 8), "unknown model 'no-such-net'", "known:")


# -- NaN / inf inputs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, np.float64(3.5e38)])  # the last overflows float32
def test_packed_predict_refuses_non_finite_floats(files, value):
    model = load_packed(files[2])
    images = np.zeros((3, 28, 28, 1), np.float64)
    images[2, 5, 5, 0] = value
    with pytest.raises(InputError, match="images"):
        model.predict(images)
    assert model.predict(images[:2]).shape == (2, 10)  # the finite rows alone are fine


@settings(max_examples=25)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 150)),
    special=st.lists(st.sampled_from([np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, 5e-324, -5e-324]), min_size=1,
                     max_size=20),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_pack_bits_follows_the_sign_convention_on_special_values(shape, special, seed, dtype):
    """bit = (x < 0): NaN of either sign and -0.0 pack as +1 (bit 0), -inf and negative denormals as -1.

    A kernel that read the IEEE sign bit instead of comparing would set the bit for -NaN and -0.0."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    flat = x.reshape(-1)
    flat[rng.integers(0, flat.size, len(special))] = special
    x = x.astype(dtype)
    np.testing.assert_array_equal(kernels.pack_bits(x), naive.pack_bits(x))


@pytest.mark.parametrize("call, name", [
    (lambda x: F.batch_norm(x, None, None, np.zeros(3, np.float32), np.ones(3, np.float32), True, eps=float("nan")), "eps"),
    (lambda x: F.batch_norm(x, None, None, np.zeros(3, np.float32), np.ones(3, np.float32), True, eps=0.0), "eps"),
    (lambda x: F.batch_norm(x, None, None, np.zeros(3, np.float32), np.ones(3, np.float32), True, momentum=-0.1), "momentum"),
    (lambda x: F.batch_norm(x, None, None, None, None, True, momentum=float("nan")), "momentum"),
    (lambda x: F.sign(x, clip=float("nan")), "clip"),
    (lambda x: F.sign(x, clip=-1.0), "clip"),
    (lambda x: F.fake_quant(x, 4, float("inf")), "bound"),
    (lambda x: F.fake_quant(x, 0, 1.0), "bits"),
    (lambda x: F.dropout(x, float("nan")), "p"),
    (lambda x: F.binary_conv2d(x, np.ones((2, 3, 3, 3), np.float32), act_clip=float("nan")), "act_clip"),
    (lambda x: F.cross_entropy(x.reshape(2, -1), np.array([0, 1]), label_smoothing=float("nan")), "label_smoothing"),
])
def test_non_finite_or_out_of_range_hyperparameters_are_input_errors(call, name):
    x = Tensor(np.random.default_rng(0).standard_normal((2, 4, 4, 3)).astype(np.float32))
    with pytest.raises(InputError, match=rf"\b{name}\b"):
        call(x)


# -- shapes that do not fit: a result of the right shape, or an InputError naming an argument ---------------------


def _names_an_argument(message: str, names) -> bool:
    return any(re.search(rf"(^|[^\w]){re.escape(n)}([^\w]|$)", message) for n in names)


@settings(max_examples=40)
@given(
    n=st.integers(0, 2), h=st.integers(1, 6), w=st.integers(1, 6), words=st.integers(1, 3),
    o=st.integers(0, 4), kh=st.integers(1, 4), kw=st.integers(1, 4), weight_words=st.integers(1, 3),
    in_channels=st.integers(-1, 200), stride=st.integers(-1, 3), padding=st.integers(-1, 2),
    groups=st.integers(0, 3), pad_value=st.sampled_from([0, 1, -1, 2]),
)
def test_binary_conv2d_kernel_with_arbitrary_shapes(n, h, w, words, o, kh, kw, weight_words, in_channels, stride,
                                                   padding, groups, pad_value):
    x = np.zeros((n, h, w, words), np.uint64)
    weight = np.zeros((o, kh, kw, weight_words), np.uint64)
    try:
        out = kernels.binary_conv2d(x, weight, in_channels, stride=stride, padding=padding, groups=groups,
                                    pad_value=pad_value)
    except InputError as error:
        names = ("x", "w", "in_channels", "stride", "padding", "groups", "pad_value")
        assert _names_an_argument(str(error), names), str(error)
        return
    ho = naive.out_size(h, kh, stride, padding, 1)
    wo = naive.out_size(w, kw, stride, padding, 1)
    assert out.shape == (n, ho, wo, o) and out.dtype == np.int32


@settings(max_examples=30)
@given(m=st.integers(0, 5), n=st.integers(0, 5), wa=st.integers(0, 3), wb=st.integers(0, 3), k=st.integers(-2, 200),
       dtype=st.sampled_from([np.uint64, np.int64, np.float32]))
def test_binary_matmul_with_arbitrary_shapes(m, n, wa, wb, k, dtype):
    a, b = np.zeros((m, wa), dtype), np.zeros((n, wb), np.uint64)
    try:
        out = kernels.binary_matmul(a, b, k)
    except InputError as error:
        assert _names_an_argument(str(error), ("a", "b", "k")), str(error)
        return
    assert out.shape == (m, n) and (out == k).all()  # all-zero words: every entry agrees


@settings(max_examples=40)
@given(
    op=st.sampled_from(["conv2d", "binary_conv2d", "linear", "binary_linear", "avg_pool2d", "max_pool2d", "add",
                        "concat", "reshape", "channel_shuffle", "space_to_depth"]),
    x_shape=st.lists(st.integers(1, 5), min_size=1, max_size=5),
    w_shape=st.lists(st.integers(1, 5), min_size=1, max_size=5),
    size=st.integers(-1, 6),
    groups=st.integers(0, 3),
)
def test_functional_ops_with_arbitrary_shapes(op, x_shape, w_shape, size, groups):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal(x_shape).astype(np.float32))
    w = Tensor(rng.standard_normal(w_shape).astype(np.float32))
    calls = {
        "conv2d": (lambda: F.conv2d(x, w, stride=size, groups=groups), ("x", "w", "stride", "groups")),
        "binary_conv2d": (lambda: F.binary_conv2d(x, w, padding=size, groups=groups), ("x", "w", "padding", "groups")),
        "linear": (lambda: F.linear(x, w), ("x", "w")),
        "binary_linear": (lambda: F.binary_linear(x, w), ("x", "w")),
        "avg_pool2d": (lambda: F.avg_pool2d(x, size), ("x", "kernel_size")),
        "max_pool2d": (lambda: F.max_pool2d(x, 2, stride=size), ("x", "stride")),
        "add": (lambda: F.add(x, w), ("a", "b")),
        "concat": (lambda: F.concat([x, w], axis=size), ("tensors",)),
        "reshape": (lambda: F.reshape(x, w_shape), ("x",)),
        "channel_shuffle": (lambda: F.channel_shuffle(x, groups), ("x", "groups")),
        "space_to_depth": (lambda: F.space_to_depth(x, size), ("x", "block", "spatial size", "channels")),
    }
    call, names = calls[op]
    try:
        out = call()
    except InputError as error:
        assert _names_an_argument(str(error), names), (op, str(error))
        return
    assert isinstance(out, Tensor) and np.all(np.isfinite(out.data))


@settings(max_examples=25)
@given(shape=st.lists(st.integers(0, 30), min_size=1, max_size=5),
       dtype=st.sampled_from([np.uint8, np.float32, np.float64, np.int32, np.bool_]),
       batch_size=st.integers(-1, 3))
def test_packed_predict_with_arbitrary_shapes(files, shape, dtype, batch_size):
    model = load_packed(files[2])
    images = np.zeros(shape, dtype)
    try:
        out = model.predict(images, batch_size)
    except InputError as error:
        assert _names_an_argument(str(error), ("images", "batch_size")), str(error)
        return
    assert out.shape == (shape[0], 10) and np.isfinite(out).all()


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--epochs", "abc"], "Invalid value for '--epochs'"),
    (["train", "--bogus"], "No such option: --bogus"),
    (["nosuch"], "No such command 'nosuch'"),
    (["bench", "kernels", "--repeats", "0"], "--repeats"),
])
def test_console_script_turns_parser_errors_into_one_line(monkeypatch, capsys, argv, fragment):
    from numbnn.cli.main import run

    monkeypatch.setattr("sys.argv", ["numbnn", *argv])
    with pytest.raises(SystemExit) as exit_info:
        run()
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], captured.err
    assert "--help" in lines[0] and captured.out == ""


def test_console_script_without_a_command_shows_help(monkeypatch, capsys):
    from numbnn.cli.main import run

    monkeypatch.setattr("sys.argv", ["numbnn"])
    with pytest.raises(SystemExit) as exit_info:
        run()
    captured = capsys.readouterr()
    assert exit_info.value.code == 0 and "train" in captured.out + captured.err


@pytest.mark.parametrize("name", ["bnn-small", "float-cnn", "reactnet-a", "ftbnn", "rbnet", "pokebnn"])
@pytest.mark.parametrize("widths", [[8.5, 16, 16, 16], [0, 16, 16, 16], [True, 16, 16, 16], "16"])
def test_widths_that_are_not_positive_integers_are_refused_not_truncated(name, widths):
    with pytest.raises(InputError, match="widths must be a list of positive integers"):
        build_model(name, widths=widths)
