"""Checks on an output path before a command starts: never overwrite an input, never a non-regular file.

A careless ``export A --out A`` or ``train --teacher T --out T`` used to replace the input the command
had just read; a device node given as ``--out`` was replaced by a regular file. Commands call
:func:`check_output_path` first, so the mistake costs nothing (no training time, no file).
"""

from __future__ import annotations

import os
from pathlib import Path

from numbnn._atomic import check_replaceable
from numbnn.errors import InputError


def same_file(a, b) -> bool:
    """True if ``a`` and ``b`` name the same file (hard links and symlinks included, or the same path)."""
    a, b = Path(a), Path(b)
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): compare what the names would resolve to
        return a.resolve() == b.resolve()


def check_output_path(out, inputs: dict, option: str = "--out") -> None:
    """Raise InputError if ``out`` is one of ``inputs`` (name -> path or None) or exists as a non-regular file."""
    for name, path in inputs.items():
        if path is not None and same_file(out, path):
            raise InputError(f"{option} {str(out)!r} is also {name}; writing it would destroy that input; "
                             f"choose another {option}")
    try:
        check_replaceable(out)
    except OSError as error:
        raise InputError(f"{option} {str(out)!r}: {error.strerror}") from None
