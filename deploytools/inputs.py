"""Operator-supplied strings checked before any command or file operation is built from them.

Paths given on the command line end up in argv lists and in messages; shell metacharacters or
control characters in one are almost always a mistake (or an attack copied from somewhere), so
they are refused with a clear message instead of being passed on.
"""

from __future__ import annotations

from pathlib import Path

from deploytools.errors import OperatorError

SHELL_METACHARACTERS = frozenset(";|&$`<>(){}[]*?!'\"#")


def check_path(value: str, what: str = "path") -> Path:
    """``value`` as a ``Path``, or an ``OperatorError`` naming the offending characters."""
    bad = sorted({ch for ch in value if ch in SHELL_METACHARACTERS or not ch.isprintable()})
    if not value.strip() or bad:
        shown = " ".join(repr(ch) for ch in bad) or "nothing"
        raise OperatorError(
            f"{what} {value!r} is not allowed: it holds {shown}",
            "pass a plain file path (letters, digits, spaces, / . _ - :)",
        )
    return Path(value)
