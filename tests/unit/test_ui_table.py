"""Tables of ids (release tags, backup ids): never wrapped nor cut, on a terminal or piped."""

from __future__ import annotations

import io

from rich.console import Console

from deploytools.ui import Ui

TAG = "release-production-20261121T101500Z-1a2b3c4"
BACKUP = "production-20261121T101503Z-1a2b3c4"
COLUMNS = ["", "tag", "action", "result", "sha", "db revision", "backup", "operator", "at"]
ROW = ["*", TAG, "rollback", "failed", "1a2b3c4d5e", "0003abcdef12", BACKUP, "ops@h", "2026-11"]


def _render(terminal: bool, width: int = 80) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    ui = Ui(
        out=Console(file=out, width=width, force_terminal=terminal, color_system=None),
        err=Console(file=err, width=width, force_terminal=terminal, color_system=None),
    )
    optional = ["backup", "at", "operator", "sha"]
    ui.table("releases", COLUMNS, [ROW, ROW], ids={"tag", "backup"}, optional=optional)
    return out.getvalue(), err.getvalue()


def test_on_an_80_column_terminal_ids_are_whole_and_what_does_not_fit_is_said() -> None:
    out, err = _render(terminal=True)
    assert out.count(TAG) == 2 and "…" not in out
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert "left out at this width: sha, backup, operator, at" in err


def test_a_terminal_too_narrow_for_the_ids_gets_them_whole_all_the_same() -> None:
    out, _ = _render(terminal=True, width=40)
    assert out.count(TAG) == 2 and "…" not in out  # the terminal wraps the line, not rich


def test_piped_the_table_keeps_every_column_at_its_width() -> None:
    out, err = _render(terminal=False)
    assert out.count(TAG) == 2 and out.count(BACKUP) == 2 and "…" not in out
    assert "0003abcdef12" in out and "2026-11" in out and not err
