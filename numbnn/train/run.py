"""Whole runs as the CLI starts them: build or resume, load data and teacher, fit, evaluate a checkpoint.

These functions hold every decision the ``numbnn train`` / ``numbnn eval`` / ``numbnn models`` commands
need, so the commands only parse options and print.
"""

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numbnn.io
from numbnn._atomic import cleanup_stale_temps
from numbnn._outputs import check_output_path
from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.models import available_models, build_model
from numbnn.models.model_args import check_model_args
from numbnn.nn import init
from numbnn.progress import ProgressBar
from numbnn.train.checkpoint import read_training_state
from numbnn.train.config import TrainConfig, make_config, model_recipe
from numbnn.train.data import load_split
from numbnn.train.float_evaluation import Evaluation, evaluate
from numbnn.train.loop import FitResult
from numbnn.train.recipes import run_recipe, step1_checkpoint_path
from numbnn.train.teachers import NO_TEACHER, resolve_teacher
from numbnn.threads import set_threads

# Settings that may change when a run is resumed; every other one must stay as the checkpoint says,
# or the resumed run would no longer continue the same computation.
RESUMABLE_CHANGES = ("epochs", "save_every")


@dataclass
class TrainOutcome:
    model_name: str
    config: TrainConfig
    result: FitResult
    checkpoint: str
    resumed_from: str | None


def default_checkpoint_path(model_name: str, now: datetime.datetime | None = None) -> Path:
    """``runs/<model>-<YYYYmmdd-HHMMSS>.h5`` under the current directory."""
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{model_name}-{stamp}.h5"


def train(
    model_name: str | None = None,
    *,
    options: dict | None = None,
    model_args: dict | None = None,
    resume: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
    after_step=None,
    threads: int | None = None,
) -> TrainOutcome:
    """Train a registered model (or continue ``resume``) and write checkpoints to ``out``.

    ``options`` are :class:`TrainConfig` fields; ``None`` values mean "not given", so the model's
    recipe and then the defaults apply (see :func:`numbnn.train.config.make_config`). When resuming,
    the checkpoint's settings are reused and only ``epochs`` and ``save_every`` may change.
    ``model_args`` are constructor arguments of a new model (e.g. smaller widths for a quick test).
    ``out`` defaults to the resumed file, else to :func:`default_checkpoint_path`.
    ``threads``: Numba/BLAS threads (default: a resume uses the checkpoint's count, a new run all cores).
    A resumed step-1 file of a two-step run continues step 1, then trains step 2 into the final file.
    """
    options = {key: value for key, value in (options or {}).items() if value is not None}
    state = None
    if resume is not None:
        state = read_training_state(_existing_file(resume, "--resume"))
        saved_name = state.model.config["name"]
        saved_args = dict(state.model.config.get("args", {}))
        saved_config = state.config
        if state.recipe is not None:  # step 1 of a two-step run: continue the whole recipe
            saved_args["binary_weights"] = True
            saved_config = state.recipe["config"].replace(step1_epochs=state.config.epochs)
        _check_same_model_args(saved_name, saved_args, model_args or {})
        if model_name is not None and model_name != saved_name:
            raise InputError(f"--model {model_name!r} does not match the resumed checkpoint's model {saved_name!r}")
        fixed = sorted(key for key, value in options.items() if key not in RESUMABLE_CHANGES and value != getattr(saved_config, key))
        if fixed:
            raise InputError(
                f"cannot change {', '.join(fixed)} when resuming (the checkpoint's settings are reused; "
                f"only {', '.join(RESUMABLE_CHANGES)} may change)"
            )
        threads = _resume_threads(state.threads, threads)
        model_name, config = saved_name, saved_config.replace(**options)
        if state.recipe is not None:
            model = build_model(saved_name, **saved_args)  # step 2's network; step 1 continues in state.model
            if out is None:
                out = Path(resume).parent / state.recipe["final"]
        else:
            model = state.model
            if state.epoch >= config.epochs:
                raise InputError(f"the checkpoint already finished {state.epoch} epoch(s); pass --epochs above {state.epoch}")
    else:
        if model_name is None:
            raise InputError("--model is required unless --resume is given")
        config = make_config(model_name, **options)
        init.seed(config.seed)
        model = build_model(model_name, **check_model_args(model_name, model_args or {}))
    if threads is not None:
        set_threads(threads)
    out = Path(out) if out is not None else Path(resume) if resume is not None else default_checkpoint_path(model_name)
    teacher_path = resolve_teacher(config.teacher) if config.teacher not in (None, NO_TEACHER) else None
    _check_outputs(out, config, teacher_path)  # found now, not when the first checkpoint is due after an epoch
    teacher = _load_teacher(teacher_path)
    train_set = load_split("train", config.limit, data_dir)
    test_set = load_split("test", config.test_limit, data_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"--out: cannot create the directory {str(out.parent)!r}: {error.strerror}") from None
    cleanup_stale_temps(out.parent, out.name)  # temporaries of a writer that was killed mid-save
    result = run_recipe(
        model, config, train_set, test_set,
        teacher=teacher, checkpoint=str(out), resume=state, progress=progress, after_step=after_step,
    )
    written = result.checkpoint if result.interrupted and result.checkpoint else str(out)  # step 1's file, if there
    return TrainOutcome(model_name, config, result, written, str(resume) if resume is not None else None)


def _resume_threads(saved: int | None, given: int | None) -> int | None:
    """The thread count a resume computes with: the checkpoint's, so that it continues bit for bit.

    Another ``--threads`` is refused: float products round differently with another count, so the
    resumed run would silently differ from the run it continues (docs/reliability.md, Determinism).
    """
    if saved is None or given is None or given == saved:
        return saved if given is None else given
    raise InputError(f"--threads {given}: this run was trained with {saved} thread(s), and a resume continues it "
                     f"bit for bit only with the same count; resume with --threads {saved} (or without --threads)")


def evaluate_checkpoint(
    path: str | os.PathLike,
    *,
    limit: int | None = None,
    batch_size: int = TrainConfig.eval_batch_size,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
    fc_head: bool = False,
) -> Evaluation:
    """Accuracy of the model stored at ``path`` on the first ``limit`` test images (all by default).

    ``fc_head``: evaluate a ReActXGB checkpoint's FC classifier instead of its deployed trees."""
    model = numbnn.io.load(_existing_file(path, "checkpoint"))
    if fc_head:
        if not hasattr(model, "clear_trees"):
            raise InputError(f"--fc-head applies to a model with a tree head (reactxgb), not {type(model).__name__}")
        model.clear_trees()
    images, labels = load_split("test", limit, data_dir)
    check_int(batch_size, "batch_size")
    with ProgressBar(progress) as bar:
        return evaluate(model, images, labels, batch_size, bar)


def describe_models() -> list[dict]:
    """Every registered model: name, summary, paper and its training recipe (``{}`` if none)."""
    return [
        {"name": spec.name, "summary": spec.summary, "paper": spec.paper, "recipe": model_recipe(spec.name)}
        for spec in available_models()
    ]


def _load_teacher(path):
    if path is None:
        return None
    teacher = numbnn.io.load(path)
    teacher.eval()
    return teacher


def _check_same_model_args(name: str, saved: dict, given: dict) -> None:
    """On --resume, repeating the run's own model arguments is fine; changing one is refused."""
    for key, value in check_model_args(name, given).items():
        if json.dumps(value) != json.dumps(saved.get(key)):  # tuples and lists alike
            raise InputError(f"--model-arg {key}={value!r} differs from the resumed checkpoint's {key}={saved.get(key)!r}; "
                             "model arguments cannot change when resuming")


def _check_outputs(out: Path, config: TrainConfig, teacher_path: Path | None) -> None:
    """``--out`` (and a two-step run's step-1 file) may not be the teacher or anything but a regular file."""
    teacher = {"the --teacher checkpoint": teacher_path}
    check_output_path(out, teacher)
    if config.recipe == "two-step":
        check_output_path(step1_checkpoint_path(out), {**teacher, "--out": out}, "step 1's checkpoint")


def _existing_file(path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what}: no such file {str(path)!r}")
    return path
