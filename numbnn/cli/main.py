"""The ``numbnn`` command: a thin typer front-end over the library.

Each ``commands_*`` module parses options, calls numbnn and prints; importing it registers its
commands on :data:`numbnn.cli.common.app`.
"""

from numbnn.cli import commands_bench  # noqa: F401  (registers `bench kernels`)
from numbnn.cli import commands_env  # noqa: F401  (registers `env`)
from numbnn.cli import commands_infer  # noqa: F401  (registers `export`, `predict`, `bench model`)
from numbnn.cli import commands_summary  # noqa: F401  (registers `summary`)
from numbnn.cli import commands_sweep  # noqa: F401  (registers `sweep`, `report`)
from numbnn.cli import commands_train  # noqa: F401  (registers `train`, `eval`, `models`)
import sys

import typer

from numbnn.cli.common import app

__all__ = ["app"]


def run() -> None:
    """Console-script entry point: a bad option or command is one ``error:`` line and exit 2.

    Typer's parser would print a usage block and a boxed message; running it with
    ``standalone_mode=False`` hands us the exception instead, so every failure of the CLI, ours or
    the parser's, looks the same to scripts and people. Typer (>= 0.28) vendors its parser and
    raises its errors as subclasses of ``typer.TyperException``, so click is not imported here.
    """
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        code = 130
    except typer.TyperException as error:
        context = getattr(error, "ctx", None)
        if type(error).__name__ == "NoArgsIsHelpError" and context is not None:
            typer.echo(context.get_help(), err=True)  # bare `numbnn` or `numbnn bench`: the help page
            code = 0
        else:
            hint = f" (see `{context.command_path} --help`)" if context is not None else ""
            typer.echo(f"error: {error.format_message()}{hint}", err=True)
            code = getattr(error, "exit_code", 2)
    sys.exit(code if isinstance(code, int) else 0)
