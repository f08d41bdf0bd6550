"""Shared pieces of the CLI: the typer apps, one-line error handling, JSON output."""

import functools
import json
import sys

import typer
from rich.console import Console

from numbnn.errors import NumbnnError

app = typer.Typer(
    name="numbnn",
    help="Train, export and run binary neural networks on a CPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # help texts are Markdown: each paragraph reflows to the terminal's width (in typer's default mode every
    # line break of a docstring stays and wraps on its own); literal <tags> and *stars* go in `code` spans
    rich_markup_mode="markdown",
)
bench_app = typer.Typer(help="Measure kernels and models (medians of repeats, warm and cold).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

# Progress bars and tables go to stderr so that stdout stays clean for --json.
console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one error line to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(command):
    """Decorator for commands: NumbnnError -> one `error:` line and exit 2; Ctrl-C -> exit 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except NumbnnError as error:
            raise fail(str(error)) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def print_json(obj) -> None:
    """Print one JSON object as the last line of stdout (for scripts)."""
    sys.stdout.write(json.dumps(obj, sort_keys=True, default=float) + "\n")
    sys.stdout.flush()
