"""Exception classes of numbnn.

Every error that bad input can cause derives from :class:`NumbnnError`, so the CLI can turn it
into one clear line and a non-zero exit. Each class also derives from the matching builtin
(``ValueError``, ``FileNotFoundError`` ...) so ordinary ``except`` clauses keep working.
"""


class NumbnnError(Exception):
    """Base class: an error numbnn explains in one line."""


class InputError(NumbnnError, ValueError):
    """An argument has the wrong shape, dtype, size or value. The message names the argument."""


class DataError(NumbnnError, ValueError):
    """A dataset file is malformed (bad IDX magic, dims, truncated data)."""


class ChecksumError(DataError):
    """A dataset file's sha256 does not match the manifest."""


class DatasetNotFoundError(NumbnnError, FileNotFoundError):
    """No copy of a dataset was found anywhere numbnn looks, and it could not be downloaded."""


class CheckpointError(NumbnnError, ValueError):
    """A checkpoint or exported model file is unreadable, incomplete or inconsistent."""


class FormatVersionError(CheckpointError):
    """A file was written by an incompatible (e.g. future) numbnn file format."""


class UnknownModelError(NumbnnError, KeyError):
    """A model name is not in the registry; the message suggests the closest name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it a plain line
        return str(self.args[0]) if self.args else ""


class TrainingDivergedError(NumbnnError, FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch and step."""


class MissingDependencyError(NumbnnError, ImportError):
    """An optional extra (xgboost, matplotlib, dask) is needed and not installed."""
