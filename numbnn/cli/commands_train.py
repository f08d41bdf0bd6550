"""``numbnn train``, ``numbnn eval`` and ``numbnn models``: parse, call :mod:`numbnn.train.run`, print."""

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from numbnn.cli.common import app, handle_errors, print_json
from numbnn.errors import InputError
from numbnn.evaluation import EVAL_BATCH_SIZE


@app.command()
@handle_errors
def train(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Registered model name (see `numbnn models`)."),
    model_arg: Optional[list[str]] = typer.Option(
        None, "--model-arg", help="Model constructor argument KEY=VALUE, repeatable; VALUE is read as the argument's type: "
        "true/false, an integer, a number, text, or a list of integers (e.g. --model-arg groups=1, "
        "--model-arg binary_weights=false, --model-arg widths=16,32,64)."
    ),
    epochs: Optional[int] = typer.Option(None, help="Total epochs (on --resume: the new total)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Images per optimizer step."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate."),
    optimizer: Optional[str] = typer.Option(None, help="adam (L2 decay, ReActNet), adamw or sgd (Nesterov momentum)."),
    schedule: Optional[str] = typer.Option(None, help="Per-iteration schedule: linear (to 0), cosine or constant."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Weight decay (on conv kernels only by default)."),
    label_smoothing: Optional[float] = typer.Option(None, "--label-smoothing", help="Label smoothing of the cross-entropy, in [0, 1)."),
    grad_clip: Optional[float] = typer.Option(None, "--grad-clip", help="Clip the global gradient norm to this value."),
    crop_padding: Optional[int] = typer.Option(
        None, "--crop-padding", help="Augmentation: random crop after padding each side by this many pixels (0: no crop)."),
    flip: Optional[bool] = typer.Option(None, "--flip/--no-flip", help="Augmentation: random horizontal flip."),
    seed: Optional[int] = typer.Option(None, help="Seed of the weights, shuffling and augmentation."),
    limit: Optional[int] = typer.Option(None, help="Train on the first N training images only."),
    test_limit: Optional[int] = typer.Option(None, "--test-limit", help="Evaluate on the first N test images only."),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Write the checkpoint every N epochs (and after the last)."),
    teacher: Optional[Path] = typer.Option(None, help="Distillation teacher (soft cross-entropy to its softmax): a checkpoint, a shipped teacher's name (resnet-20), or none."),
    teacher_targets: Optional[str] = typer.Option(
        None, "--teacher-targets",
        help="batch: the teacher runs on every augmented batch; once: on the un-augmented training images, once before "
             "training; once-flip-averaged: as once, averaging the teacher over each image and its mirror (a better teacher)."),
    recipe: Optional[str] = typer.Option(
        None, help="single, or two-step: ReActNet's step 1 (real weights) then step 2 (binary, initialised from step 1)."
    ),
    step1_epochs: Optional[int] = typer.Option(None, "--step1-epochs", help="two-step: epochs of step 1 (default: half of --epochs)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Directory holding the FashionMNIST files."),
    out: Optional[Path] = typer.Option(None, help="Checkpoint to write (default: the --resume file, else `runs/<model>-<time>.h5`)."),
    resume: Optional[Path] = typer.Option(None, help="Continue exactly from this checkpoint (its settings are reused)."),
    threads: Optional[int] = typer.Option(
        None, help="Threads for the Numba kernels and BLAS (default: all cores; on --resume the checkpoint's count)."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object as the last stdout line."),
):
    """Train a model on FashionMNIST, evaluating on the test split after every epoch.

    Settings not given come from the model's recipe (shown by `numbnn models`; the binary models share
    one: Adam, lr 2e-3 per 64 images decaying linearly to 0, no augmentation, 8 epochs (reactnet-a: 9), distilled
    from the shipped resnet-20 teacher; `--teacher none` trains on the labels with smoothing 0.1). Each epoch reports test accuracy and the share of binary weights whose sign flipped.
    Ctrl-C saves a checkpoint that `--resume` continues exactly; a non-finite loss stops with an error
    and keeps the last checkpoint.
    """
    from numbnn.models.model_args import parse_pairs  # deferred: keeps `numbnn --help` fast (start-up time)
    from numbnn.train import run  # deferred likewise
    from numbnn.train.recipes import heads_line

    options = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "schedule": schedule,
        "weight_decay": weight_decay, "label_smoothing": label_smoothing, "grad_clip": grad_clip,
        "crop_padding": crop_padding, "flip": flip, "seed": seed,
        "limit": limit, "test_limit": test_limit, "save_every": save_every,
        "teacher": str(teacher) if teacher is not None else None, "teacher_targets": teacher_targets, "recipe": recipe, "step1_epochs": step1_epochs,
    }
    model_args = parse_pairs(model_arg or [], "--model-arg")  # typed against the model in run.train
    outcome = run.train(model, options=options, model_args=model_args, resume=resume, out=out, data_dir=data_dir,
                        threads=threads)
    result = outcome.result
    if result.interrupted:
        where = f"epoch {result.epochs_completed + 1}, step {result.step}" if result.step else f"epoch {result.epochs_completed}"
        typer.echo(f"interrupted after {where}; resumable checkpoint: {outcome.checkpoint}", err=True)
        typer.echo(f"continue with: numbnn train --resume {outcome.checkpoint}", err=True)
        raise typer.Exit(130)
    summary = {
        "model": outcome.model_name,
        "recipe": outcome.config.recipe,
        "test_accuracy": result.test_accuracy,
        "epochs": result.epochs_completed,
        "seconds": result.seconds,
        "images_per_s": result.images_per_s,
        "checkpoint": outcome.checkpoint,
        "history": result.history,
    }
    typer.echo(
        f"{outcome.model_name}: test accuracy {result.test_accuracy:.2%} after {result.epochs_completed} epoch(s), "
        f"{result.seconds:.1f} s ({result.images_per_s:,.0f} training images/s); checkpoint written to {outcome.checkpoint}"
    )
    last = result.history[-1] if result.history else {}
    if "trees" in last:  # ReActXGB: both heads side by side
        typer.echo(heads_line(last))
        summary.update({key: last[key] for key in ("fc_test_accuracy", "tree_test_accuracy", "trees") if key in last})
    if json_output:
        print_json(summary)


@app.command("eval")
@handle_errors
def evaluate(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by `numbnn train`, or a packed model (`numbnn export`)."),
    packed: bool = typer.Option(False, "--packed", help="Compile the checkpoint and evaluate its packed inference model."),
    limit: Optional[int] = typer.Option(None, help="Evaluate on the first N test images only."),
    batch_size: int = typer.Option(EVAL_BATCH_SIZE, "--batch-size", help="Images per forward pass (as in training)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Directory holding the FashionMNIST files."),
    threads: Optional[int] = typer.Option(None, help="Threads for the Numba kernels and BLAS (default: all cores)."),
    fc_head: bool = typer.Option(
        False, "--fc-head", help="ReActXGB: evaluate the FC classifier instead of the trees that replace it."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object as the last stdout line."),
):
    """Test-split accuracy of a checkpoint (the same computation as training's end-of-epoch evaluation)."""
    from numbnn.train import run  # deferred: keeps `numbnn --help` fast (start-up time)
    from numbnn.threads import set_threads

    if threads is not None:
        set_threads(threads)
    from numbnn.inference.format import is_packed_model  # deferred: keeps `numbnn --help` fast (start-up time)

    if fc_head and (packed or is_packed_model(checkpoint)):
        raise InputError("--fc-head needs a training checkpoint: a packed model holds only its deployed head")
    if packed or is_packed_model(checkpoint):  # the packed path: numbnn.evaluation.packed
        from numbnn.evaluation.packed import evaluate_file  # deferred: keeps `numbnn --help` fast (start-up time)

        result = evaluate_file(checkpoint, from_checkpoint=not is_packed_model(checkpoint), limit=limit,
                               batch_size=batch_size, data_dir=data_dir)
    else:
        result = run.evaluate_checkpoint(checkpoint, limit=limit, batch_size=batch_size, data_dir=data_dir,
                                         fc_head=fc_head)
    typer.echo(f"accuracy {result.accuracy:.2%} ({result.correct}/{result.n} test images), loss {result.loss:.4f}")
    if json_output:
        print_json({"accuracy": result.accuracy, "n": result.n, "correct": result.correct, "loss": result.loss})


@app.command()
@handle_errors
def models(json_output: bool = typer.Option(False, "--json", help="Print one JSON object as the last stdout line.")):
    """List the registered models with their papers and training recipes."""
    from numbnn.train.run import describe_models  # deferred: keeps `numbnn --help` fast (start-up time)

    entries = describe_models()
    if json_output:
        print_json({"models": entries})
        return
    table = Table(title="numbnn models")
    for column in ("name", "summary", "paper", "recipe"):
        table.add_column(column)
    for entry in entries:
        recipe = ", ".join(f"{key}={value}" for key, value in entry["recipe"].items())
        table.add_row(entry["name"], entry["summary"], entry["paper"], recipe or "defaults")
    Console().print(table)  # the table is the output: stdout
