"""releases and history: what the journal knows about an environment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke.context import Context

from deploytools.tasks._support import ENV_HELP, JSON_HELP, settings, task

if TYPE_CHECKING:
    from deploytools.journal import Journal
    from deploytools.ui import Ui


def _journal(c: Context, env: str | None, ui: Ui) -> Journal:
    """The environment's journal, shown masked with the env file's secrets: a journal written
    by an older version may hold one in a form it did not mask."""
    from deploytools import targets
    from deploytools.envvalidate import learned_values
    from deploytools.journal import Journal

    conf = settings(c, env)
    if conf.path(conf.env_file).is_file():
        learned_values(conf, ui.redact)
    host = targets.primary(conf)
    return Journal(host, targets.state_dir(conf, host), ui.redact)


@task(help={"env": ENV_HELP, "json": JSON_HELP})
def releases(c: Context, ui: Ui, env: str | None = None, json: bool = False) -> None:
    """List recorded releases (deploys and rollbacks), newest first; * marks the running one."""
    from deploytools.release import current_release

    journal = _journal(c, env, ui)
    recorded = journal.releases()
    journal.warn_damaged(ui.warn)
    if json:
        ui.emit_json(list(reversed(recorded)))
        return
    running = current_release(recorded)
    rows = [
        [
            "*" if r is running else "",
            r.get("tag"),
            r.get("action", "deploy"),
            r.get("result"),
            (r.get("sha") or "")[:10],
            r.get("revision"),
            r.get("backup"),
            r.get("operator"),
            r.get("at"),
        ]
        for r in reversed(recorded)
    ]
    columns = ["", "tag", "action", "result", "sha", "db revision", "backup", "operator", "at"]
    ui.table(f"releases of {env or 'the default environment'}", columns, rows)


@task(
    help={"env": ENV_HELP, "json": JSON_HELP, "limit": "show at most this many events"},
    positive=["limit"],
)
def history(
    c: Context, ui: Ui, env: str | None = None, json: bool = False, limit: int = 50
) -> None:
    """Show the journal: every step of every deploy and rollback, with durations and results."""
    journal = _journal(c, env, ui)
    records = journal.records()[-limit:]
    journal.warn_damaged(ui.warn)
    if json:
        ui.emit_json(records)
        return
    rows = [
        [
            r.get("at"),
            r.get("kind"),
            r.get("step") or r.get("tag") or r.get("release") or "",
            r.get("duration", ""),
            r.get("error") or r.get("result") or "",
        ]
        for r in records
    ]
    ui.table("history", ["at", "event", "step / release", "seconds", "result"], rows)
