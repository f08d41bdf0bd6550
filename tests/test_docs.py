"""docs/architecture.md names real files and leaves nothing out: every path in its tables exists (globs
match something), every kernel module and every registered packed op has a row."""

import importlib
import pkgutil
import re
from pathlib import Path

import numbnn.inference
from numbnn.inference.ops import OPS

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
# Kernel modules that are no op's kernel, so no row names them: what the kernels share.
KERNEL_HELPERS = {
    "_checks.py": "argument checks of the public kernel wrappers",
    "geometry.py": "convolution output sizes and the pixel walk",
    "intrinsics.py": "LLVM popcount and sign-bit intrinsics inside the packing and conv kernels",
    "platform.py": "the CPU and Numba report of `numbnn env`",
}


def tables() -> list[list[str]]:
    """Each Markdown table of the doc as its rows (header and |---| line included)."""
    blocks, block = [], []
    for line in DOC.read_text().splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    return blocks


def table_paths() -> list[str]:
    paths = []
    for line in (row for table in tables() for row in table):
        paths += [p for p in re.findall(r"`([^`\s]+)`", line) if re.match(r"(numbnn|tests|docs|benchmarks)(/|$)", p)]
    return paths


def test_the_tables_name_many_paths():
    assert len(table_paths()) >= 30  # the op tables are there and were parsed


def test_every_path_in_the_tables_exists():
    missing = [p for p in table_paths() if not any(ROOT.glob(p.rstrip("/")))]
    assert missing == []


def test_every_kernel_module_has_a_row():
    modules = {path.name for path in (ROOT / "numbnn" / "kernels").glob("*.py")} - {"__init__.py"}
    assert set(KERNEL_HELPERS) <= modules  # the exemptions name real modules
    named = set(table_paths())
    assert sorted(m for m in modules - set(KERNEL_HELPERS) if f"numbnn/kernels/{m}" not in named) == []


def test_every_registered_packed_op_has_a_row():
    for module in pkgutil.walk_packages(numbnn.inference.__path__, "numbnn.inference."):
        importlib.import_module(module.name)  # every module, so every register_op has run
    (packed,) = [table for table in tables() if table[0].startswith("| packed op |")]
    listed = {name for row in packed[2:] for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert len(OPS) >= 15 and sorted(set(OPS) - listed) == []
