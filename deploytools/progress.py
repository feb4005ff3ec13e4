"""Live progress of a pipeline: a rich view on a terminal, plain lines otherwise.

The view goes to stderr (the Ui's error console); stdout stays for the summary or ``--json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.live import Live

    from deploytools.ui import Ui

MARKS = {"done": "✓", "failed": "✗", "interrupted": "!", "skipped": "-"}


class Progress:
    def __init__(self, ui: Ui, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ui = ui
        self._clock = clock
        self._rows: list[list[Any]] = []  # [name, status, started, elapsed, why skipped]
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.ui.err.is_terminal and not self.ui.json_mode:
            from rich.live import Live

            self._live = Live(
                get_renderable=self._render,
                console=self.ui.err,
                refresh_per_second=8,
                transient=False,
            )
            self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def start(self, name: str) -> None:
        self._rows.append([name, "running", self._clock(), 0.0, ""])
        if self._live is None:
            self.ui.info(f"… {name}")

    def finish(self, name: str, status: str, elapsed: float, why: str = "") -> None:
        """``why``: what made a ``skipped`` step skip, shown beside it."""
        for row in reversed(self._rows):
            if row[0] == name and row[1] == "running":
                row[1], row[3], row[4] = status, elapsed, why
                break
        if self._live is None:
            self.ui.info(f"{MARKS.get(status, '?')} {name} {_said(status, why)} ({elapsed:.1f}s)")

    def _render(self) -> Any:
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 1))
        for name, status, started, elapsed, why in self._rows:
            if status == "running":
                table.add_row(Spinner("dots"), name, f"{self._clock() - started:.1f}s")
            else:
                style = {"done": "green", "skipped": "yellow"}.get(status, "red")
                mark = Text(MARKS.get(status, "?"), style=style)
                shown = name if status == "done" else f"{name} {_said(status, why)}"
                table.add_row(mark, Text(shown), f"{elapsed:.1f}s")
        return table


def _said(status: str, why: str) -> str:
    return f"{status} ({why})" if why else status
