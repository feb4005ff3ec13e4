"""Operator output: progress and diagnostics on stderr, results (tables, ``--json``) on stdout.

One ``Ui`` per task run, injected into whatever prints; every string passes the redactor.
rich is imported when a ``Ui`` is made, not when the module is, so ``invoke --list`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from deploytools.redact import Redactor

if TYPE_CHECKING:
    from rich.console import Console


class Ui:
    def __init__(
        self,
        *,
        json_mode: bool = False,
        redactor: Redactor | None = None,
        err: Console | None = None,
        out: Console | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        from rich.console import Console

        self.json_mode = json_mode
        self.redact = redactor or Redactor()
        self.err = err or Console(file=stderr, stderr=stderr is None, highlight=False)
        self.out = out or Console(file=stdout, highlight=False, soft_wrap=True)

    def _say(self, text: str, style: str = "") -> None:
        self.err.print(self.redact(text), style=style or None, markup=False, highlight=False)

    def info(self, text: str) -> None:
        self._say(text)

    def success(self, text: str) -> None:
        self._say(text, "green")

    def warn(self, text: str) -> None:
        self._say(f"warning: {text}", "yellow")

    def error(self, problem: str, fix: str = "") -> None:
        self._say(f"error: {problem}", "bold red")
        if fix:
            self._say(f"  fix: {fix}", "red")

    def result(self, text: str) -> None:
        """A line meant for stdout (what a script would read)."""
        self.out.print(self.redact(text), markup=False, highlight=False)

    def emit_json(self, data: Any) -> None:
        self.out.file.write(self.redact.dumps(data, indent=2) + "\n")
        self.out.file.flush()

    def table(
        self,
        title: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        styles: Sequence[str] = (),
    ) -> None:
        from rich.table import Table
        from rich.text import Text

        # Text, not markup: a message naming "[alembic]" or "[keys.PORT]" keeps its brackets.
        table = Table(title=Text(self.redact(title)), title_justify="left")
        for i, column in enumerate(columns):
            table.add_column(column, style=styles[i] if i < len(styles) else None, overflow="fold")
        for row in rows:
            table.add_row(*(Text(self.redact("" if cell is None else str(cell))) for cell in row))
        self.out.print(table)
