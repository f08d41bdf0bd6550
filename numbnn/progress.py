"""A rich progress bar on stderr for epochs and evaluation: loss, accuracy, images/s and ETA.

Kept apart from the loop so library users can switch it off (``progress=False``) and stdout stays free
for machine-readable output.
"""

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

_console = Console(stderr=True)


class ProgressBar:
    """One bar per task; ``update(advance, **fields)`` moves it and refreshes the metric text."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._progress = None

    def __enter__(self):
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[metrics]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=_console,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None
        return False

    def task(self, description: str, total: int, completed: int = 0):
        if self._progress is None:
            return None
        return self._progress.add_task(description, total=total, completed=completed, metrics="")

    def update(self, task, advance: int = 1, metrics: str = ""):
        if self._progress is not None and task is not None:
            self._progress.update(task, advance=advance, metrics=metrics)

    def log(self, message: str):
        """A line printed above the bars (or straight to stderr when bars are off)."""
        if self._progress is not None:
            self._progress.console.print(message, highlight=False)
        elif self.enabled:
            _console.print(message, highlight=False)
