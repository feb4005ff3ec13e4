"""Operator output: progress and diagnostics on stderr, results (tables, ``--json``) on stdout.

One ``Ui`` per task run, injected into whatever prints; every string passes the redactor.
rich is imported when a ``Ui`` first prints, not with the module: ``invoke --list`` stays fast.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from typing import IO, TYPE_CHECKING, Any

from deploytools.redact import Redactor

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

# Columns (and borders) a table needs at least beside its id columns: a word of each other
# column still shows, folded.
FOLDED_MIN = 4


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
        self.json_mode = json_mode
        self.redact = redactor or Redactor()
        self._err, self._out = err, out
        self._stdout, self._stderr = stdout, stderr
        self._making = threading.Lock()  # hosts rolled out at once may say their first word

    @property
    def err(self) -> Console:
        """Progress and diagnostics; made at the first word, so that a task that writes
        before it says anything (a kill by card: flags/killcard.py) does so before rich loads."""
        with self._making:
            if self._err is None:
                from rich.console import Console

                err = Console(file=self._stderr, stderr=self._stderr is None, highlight=False)
                # Piped into a file or a log, a line is never cut at the guessed 80 columns.
                err.soft_wrap = not err.is_terminal
                self._err = err
            return self._err

    @property
    def out(self) -> Console:
        """Results: tables, ``--json``, lines a script reads."""
        with self._making:
            if self._out is None:
                from rich.console import Console

                self._out = Console(file=self._stdout, highlight=False, soft_wrap=True)
            return self._out

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
        ids: Collection[str] = (),
        optional: Sequence[str] = (),
    ) -> None:
        """Print a table; the ``ids`` columns (tags, backup ids: copied by people) are never
        wrapped nor cut, the others fold to make room.

        On a terminal too narrow for the ids and a word of each column, the ``optional``
        columns are left out (said under the table; ``--json`` has them); piped, the table
        keeps its natural width whatever ``COLUMNS`` says.
        """
        cells = [["" if cell is None else self.redact(str(cell)) for cell in row] for row in rows]
        shown = list(columns)
        if self.out.is_terminal:
            hidden = [c for c in optional if c in shown]
            while hidden and _floor(shown, cells, columns, ids) > self.out.width:
                shown.remove(hidden.pop())
        table = _table(self.redact(title), shown, cells, columns, ids, styles)
        if self.out.is_terminal:
            width = max(self.out.width, _floor(shown, cells, columns, ids))
        else:
            from rich.measure import Measurement

            width = Measurement.get(self.out, self.out.options.update_width(10**6), table).maximum
        _print_at(self.out, table, width)
        if left := [c for c in columns if c not in shown]:
            self._say(f"(left out at this width: {', '.join(left)}; --json shows every field)")


def _table(
    title: str,
    shown: Sequence[str],
    cells: Sequence[Sequence[str]],
    columns: Sequence[str],
    ids: Collection[str],
    styles: Sequence[str],
) -> Table:
    from rich.table import Table
    from rich.text import Text

    # Text, not markup: a message naming "[alembic]" or "[keys.PORT]" keeps its brackets.
    table = Table(title=Text(title), title_justify="left")
    picks = [columns.index(name) for name in shown]
    for i in picks:
        name, style = columns[i], styles[i] if i < len(styles) else None
        if name in ids:
            table.add_column(name, style=style, no_wrap=True, min_width=_widest(cells, i, name))
        else:
            table.add_column(name, style=style, overflow="fold")
    for row in cells:
        table.add_row(*(Text(row[i]) for i in picks))
    return table


def _widest(cells: Sequence[Sequence[str]], index: int, name: str) -> int:
    return max([len(name), *(len(row[index]) for row in cells)])


def _floor(
    shown: Sequence[str],
    cells: Sequence[Sequence[str]],
    columns: Sequence[str],
    ids: Collection[str],
) -> int:
    """The narrowest the table can be with its ids whole: each id column at its widest cell,
    every other one at a few characters, plus padding and borders (3 per column, 1 more)."""
    widths = [
        _widest(cells, columns.index(name), name) if name in ids else FOLDED_MIN for name in shown
    ]
    return sum(widths) + 3 * len(shown) + 1


def _print_at(console: Console, table: Table, width: int) -> None:
    """Print ``table`` ``width`` columns wide, wider than the console if need be (a terminal
    then wraps the line; rich would otherwise cut the ids)."""
    previous = console.width
    console.width = width
    try:
        console.print(table)
    finally:
        console.width = previous
