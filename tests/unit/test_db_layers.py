"""``db`` sits beside ``runtime``, not above it: nothing db imports reaches deploytools.runtime,
and db's modules import one another without a cycle.

Read from the source, every import counted (top level, inside a function, under
TYPE_CHECKING): a lazy import is still a dependency, only a later one.
"""

import ast
from collections.abc import Iterable
from pathlib import Path

import deploytools

PACKAGE = Path(deploytools.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("deploytools", *path.relative_to(PACKAGE).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _known(name: str) -> str | None:
    """The deploytools module ``name`` is or lies in (``from pkg import name`` names either)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> set[str]:
    """The deploytools modules ``module`` imports, wherever in it the import stands."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {m for n in names if n.startswith("deploytools") and (m := _known(n))}
    return found - {module}


def reached(start: Iterable[str]) -> dict[str, list[str]]:
    """Every module reached from ``start``, with one import chain that gets there."""
    paths = {m: [m] for m in start}
    todo = list(paths)
    while todo:
        module = todo.pop()
        for dep in sorted(imports(module)):
            if dep not in paths:
                paths[dep] = [*paths[module], dep]
                todo.append(dep)
    return paths


DB = sorted(m for m in MODULES if m == "deploytools.db" or m.startswith("deploytools.db."))


def test_nothing_db_imports_reaches_the_runtime_package() -> None:
    into_runtime = [
        " -> ".join(chain)
        for module, chain in reached(DB).items()
        if module == "deploytools.runtime" or module.startswith("deploytools.runtime.")
    ]
    assert into_runtime == []


def test_db_modules_import_one_another_without_a_cycle() -> None:
    cycles = []
    for module in DB:
        for dep in imports(module) & set(DB):
            if module in reached([dep]):
                cycles.append(" -> ".join([module, *reached([dep])[module][:-1], module]))
    assert cycles == []
