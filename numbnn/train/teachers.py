"""Distillation teachers: a checkpoint path, the name of a teacher shipped in ``data/teachers``, or ``none``.

``data/teachers/MANIFEST.json`` lists each shipped checkpoint (``<name>.h5``) with the command that
trained it, its test accuracy, size and sha256. A name resolves to that file only if its bytes match the
manifest, so a truncated or altered teacher is refused with one error line instead of distilling from
whatever the file now holds; a name that is not shipped is an error too, never a silent run without a
teacher.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from numbnn.datasets.fashion import REPO_DATA_DIR
from numbnn.errors import ChecksumError, InputError
from numbnn.models.layout import NO_TEACHER

TEACHERS_DIR = REPO_DATA_DIR / "teachers"


def shipped_teachers(directory: Path = TEACHERS_DIR) -> dict:
    """``{name: manifest entry}`` of the shipped teachers (name = file name without ``.h5``); {} if none."""
    manifest = directory / "MANIFEST.json"
    if not manifest.is_file():
        return {}
    try:
        entries = json.loads(manifest.read_text())["teachers"]
    except (ValueError, KeyError, TypeError) as error:
        raise ChecksumError(f"{manifest}: not a teachers manifest ({type(error).__name__}: {error})") from None
    return {Path(file).stem: {**entry, "file": file} for file, entry in entries.items()}


def resolve_teacher(value: str, directory: Path = TEACHERS_DIR) -> Path:
    """The checkpoint a ``--teacher`` value means: an existing file, else a shipped teacher's verified file."""
    path = Path(value)
    if path.is_file():
        return path
    shipped = shipped_teachers(directory)
    if value not in shipped:
        names = ", ".join(sorted(shipped)) or "none"
        raise InputError(f"--teacher: no such file {value!r}, and it is not a shipped teacher (shipped: {names})")
    entry = shipped[value]
    path = directory / entry["file"]
    if not path.is_file():
        raise InputError(f"--teacher {value}: the shipped file {path} is missing (give a checkpoint path, "
                         f"or --teacher {NO_TEACHER} to train without distillation)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry["sha256"]:
        raise ChecksumError(f"--teacher {value}: {path} does not match its manifest's sha256 (corrupt or altered file)")
    return path
