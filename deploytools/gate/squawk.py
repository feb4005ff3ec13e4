"""Squawk (``squawk-cli``, the field's PostgreSQL migration linter) over the offline SQL of the
revisions: its violations by revision, read from its JSON report.

Our own lint (``db.lint``) keeps only the rules Squawk has no equivalent for (``truncate``),
and runs alone on SQLite. A revision's ``reviewed`` mapping accepts a Squawk rule by its own
name or by the name of ours it stands for. ``require-lock-timeout`` and
``require-statement-timeout`` are left out: deploytools sets both timeouts on every connection
of a migration (``database.lock_timeout_ms`` / ``statement_timeout_ms`` through PGOPTIONS), so
the SQL needs no ``SET``. A project's ``.squawk.toml`` (at its root) is Squawk's own
configuration: ``excluded_rules``, ``pg_version``...
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deploytools.errors import CommandError, OperatorError
from deploytools.hosts.local import LocalHost

SECTION = re.compile(r"^-- Running upgrade .* -> (\S+)\s*$")
# Our rule -> the Squawk rules that find the same; ours is not run where Squawk runs.
SQUAWK_OF: Mapping[str, frozenset[str]] = {
    "drop-table": frozenset({"ban-drop-table"}),
    "drop-column": frozenset({"ban-drop-column"}),
    "alter-type": frozenset({"changing-column-type"}),
    "not-null-without-default": frozenset({"adding-required-field", "adding-not-nullable-field"}),
    "create-index": frozenset({"require-concurrent-index-creation"}),
    "rename": frozenset({"renaming-column", "renaming-table"}),
}
EXCLUDED = ("require-lock-timeout", "require-statement-timeout")
CONFIG = ".squawk.toml"
TIMEOUT = 60.0


@dataclass(frozen=True)
class Violation:
    revision: str
    rule: str
    message: str
    line: int  # in the revision's offline SQL as a whole

    def reviewed_by(self, reviewed: Mapping[str, str]) -> str | None:
        """The revision's reason for accepting this, under Squawk's name or ours."""
        if self.rule in reviewed:
            return reviewed[self.rule]
        ours = [name for name, rules in SQUAWK_OF.items() if self.rule in rules]
        return next((reviewed[name] for name in ours if name in reviewed), None)


def binary() -> str | None:
    """The ``squawk`` of deploytools' own environment, else one on PATH."""
    beside = Path(sys.executable).with_name("squawk")
    return str(beside) if beside.is_file() else shutil.which("squawk")


def run(squawk: str, sql: str, root: Path) -> list[Violation]:
    """Squawk's violations in ``sql`` that fall inside a revision (not alembic's bookkeeping)."""
    with tempfile.TemporaryDirectory(prefix="deploytools-squawk-") as scratch:
        path = Path(scratch) / "migrations.sql"
        path.write_text(sql, encoding="utf-8")
        argv = [squawk, "--reporter", "json", "--exclude", ",".join(excluded(root)), str(path)]
        try:
            done = LocalHost().run(argv, cwd=str(root), check=False, timeout=TIMEOUT)
        except CommandError as exc:
            raise OperatorError(
                f"squawk did not run: {exc.problem}", "reinstall squawk-cli"
            ) from None
    try:
        found = json.loads(done.stdout or "[]")
    except ValueError:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise OperatorError(
            f"squawk failed: {said[-1] if said else f'exit {done.returncode}'}",
            "run squawk on the SQL of `invoke db.migrate --sql` to see why",
        ) from None
    owners = _revisions_by_line(sql)
    return [  # Squawk counts lines from 0
        Violation(owner, v["rule_name"], v["message"], v["line"] + 1)
        for v in found
        if (owner := owners.get(v["line"] + 1)) is not None
    ]


def excluded(root: Path) -> list[str]:
    """``EXCLUDED`` and the project's ``.squawk.toml`` ``excluded_rules`` (Squawk's
    ``--exclude`` replaces the file's list instead of adding to it)."""
    from deploytools.config import parse_toml, read_text

    path = root / CONFIG
    rules = parse_toml(read_text(path), path).get("excluded_rules", []) if path.is_file() else []
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise OperatorError(f"{path}: excluded_rules must be a list of rule names", "fix it")
    return list(dict.fromkeys([*EXCLUDED, *rules]))


def _revisions_by_line(sql: str) -> dict[int, str]:
    """Line number (1-based) -> the revision whose section holds it."""
    owners, current = {}, None
    for number, line in enumerate(sql.splitlines(), start=1):
        if mark := SECTION.match(line):
            current = mark.group(1)
        if current is not None:
            owners[number] = current
    return owners
