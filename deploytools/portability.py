"""A lint rule ruff lacks: no shell strings and no POSIX-only process tricks.

deploytools must run on a Windows control machine and never hand a string to a shell, so
``shell=True``, ``pty``, ``fcntl`` and ``os.fork`` are refused everywhere except
``deploytools/platform.py``, the one module that may hold platform-specific code.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ALLOWED = {Path("deploytools/platform.py")}
FORBIDDEN_MODULES = {"pty", "fcntl", "termios"}
FORBIDDEN_CALLS = {("os", "fork"), ("os", "forkpty"), ("os", "setsid"), ("os", "killpg")}


def problems_in(path: Path, source: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    yield f"{path}:{node.lineno}: import {alias.name} (POSIX-only)"
        elif (
            isinstance(node, ast.ImportFrom)
            and (node.module or "").split(".")[0] in FORBIDDEN_MODULES
        ):
            yield f"{path}:{node.lineno}: from {node.module} import ... (POSIX-only)"
        elif isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and (func.value.id, func.attr) in FORBIDDEN_CALLS
            ):
                call = f"{func.value.id}.{func.attr}()"
                yield f"{path}:{node.lineno}: {call} (POSIX-only; use deploytools.platform)"
            for kw in node.keywords:
                if kw.arg == "shell" and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False
                ):
                    yield f"{path}:{node.lineno}: shell=... (pass an argv list instead)"


def check(paths: Iterable[Path], root: Path) -> list[str]:
    found: list[str] = []
    for path in paths:
        relative = path.resolve().relative_to(root.resolve())
        if relative not in ALLOWED:
            found.extend(problems_in(relative, path.read_text(encoding="utf-8")))
    return found


def main(argv: list[str]) -> int:
    root = Path.cwd()
    targets = [Path(a) for a in argv] or [
        root / "deploytools",
        root / "tasks.py",
        root / "noxfile.py",
    ]
    files = [f for t in targets for f in ([t] if t.is_file() else sorted(t.rglob("*.py")))]
    found = check(files, root)
    for line in found:
        print(line)
    print(f"portability: {len(files)} files, {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
