"""The ``numbnn`` command: a thin typer front-end over the library.

Each ``commands_*`` module parses options, calls numbnn and prints; importing it registers its
commands on :data:`cli.common.app`.
"""

from cli import commands_bench  # noqa: F401  (registers `bench kernels`)
from cli import commands_env  # noqa: F401  (registers `env`)
from cli import commands_infer  # noqa: F401  (registers `export`, `predict`, `bench model`)
from cli import commands_summary  # noqa: F401  (registers `summary`)
from cli import commands_sweep  # noqa: F401  (registers `sweep`, `report`)
from cli import commands_train  # noqa: F401  (registers `train`, `eval`, `models`)
from cli.common import app

__all__ = ["app"]


def run() -> None:
    """Console-script entry point."""
    app()
