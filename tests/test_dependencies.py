"""Every module numbnn/ imports (the CLI included) is the standard library or declared in pyproject.toml.

A module imported at the top of a file must be a base dependency (``numbnn train`` on a fresh
install loads it); one imported inside a function may instead come from an optional extra, which
the importing code turns into a clear MissingDependencyError.
"""

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OWN = {"numbnn"}
# Import names whose distribution is called something else.
DISTRIBUTION_OF = {"PIL": "pillow", "xgboost": "xgboost-cpu"}


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {_requirement_name(r) for r in project["dependencies"]}
    extras = {_requirement_name(r) for reqs in project.get("optional-dependencies", {}).values() for r in reqs}
    return base, extras


def _imports(path: Path):
    """(top-level module name, imported at module level?) for every absolute import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(id(child) for child in ast.walk(node) if child is not node)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            yield name.split(".")[0], id(node) not in in_function


def _third_party_imports():
    for folder in sorted(OWN):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for module, top_level in _imports(path):
                if module not in sys.stdlib_module_names and module not in OWN:
                    yield path.relative_to(ROOT), module, top_level


def test_every_import_is_declared():
    base, extras = _declared()
    problems = []
    for path, module, top_level in _third_party_imports():
        distribution = DISTRIBUTION_OF.get(module, module).lower().replace("_", "-")
        allowed = base if top_level else base | extras
        if distribution not in allowed:
            where = "dependencies" if top_level else "dependencies or an optional extra"
            problems.append(f"{path}: imports {module!r}, but {distribution!r} is not in [project] {where}")
    assert not problems, "\n".join(problems)


def test_the_scan_sees_the_imports_it_checks():
    found = {module for _, module, _ in _third_party_imports()}
    assert {"numpy", "numba", "h5py", "typer", "rich"} <= found
    assert "click" not in found  # typer vendors its parser; click is not installed by it


def test_every_base_dependency_is_imported():
    """The converse: a declared dependency nothing imports is install time for nothing (scipy was one)."""
    base, _ = _declared()
    used = {DISTRIBUTION_OF.get(module, module).lower().replace("_", "-") for _, module, _ in _third_party_imports()}
    assert base - used == set()
