"""docs/architecture.md names real files: every path in its tables exists (globs match something)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"


def table_paths() -> list[str]:
    paths = []
    for line in DOC.read_text().splitlines():
        if line.startswith("|"):
            paths += [p for p in re.findall(r"`([^`\s]+)`", line) if re.match(r"(numbnn|tests|docs|benchmarks)(/|$)", p)]
    return paths


def test_the_tables_name_many_paths():
    assert len(table_paths()) >= 30  # the op tables are there and were parsed


def test_every_path_in_the_tables_exists():
    missing = [p for p in table_paths() if not any(ROOT.glob(p.rstrip("/")))]
    assert missing == []
