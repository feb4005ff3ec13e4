"""releases and history: what the journal knows about an environment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from invoke.context import Context

from deploytools.tasks._support import ENV_HELP, JSON_HELP, open_site, task

if TYPE_CHECKING:
    from deploytools.site import Site
    from deploytools.site.journal import Journal
    from deploytools.ui import Ui


def _masked(site: Site) -> Journal:
    """The environment's journal, shown masked with the env file's secrets (a journal written
    by an older version may hold one in a form it did not mask)."""
    site.env_values_if_any()
    return site.journal


def _confirmed(site: Site, recorded: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The journal's running release if the stack runs it (every service, on the journal's
    host): a start cut short leaves the last good release recorded but running nowhere."""
    from deploytools.errors import DeployToolsError
    from deploytools.release import current_release
    from deploytools.runtime.base import whole_release

    record = current_release(recorded)
    if record is None:
        return None
    try:
        runs = whole_release(site.runtime(site.primary), {str(r.get("tag")) for r in recorded})
    except DeployToolsError as exc:
        site.ui.warn(f"* is the journal's word: the stack could not be asked ({exc.problem})")
        return record
    if runs == record.get("tag"):
        return record
    site.ui.warn(
        f"the journal says {record.get('tag')} runs, but the stack runs "
        f"{runs or 'no release on every service'}: not marked (see invoke stack.status)"
    )
    return None


@task(help={"env": ENV_HELP, "json": JSON_HELP})
def releases(c: Context, ui: Ui, env: str | None = None, json: bool = False) -> None:
    """List recorded releases (deploys and rollbacks), newest first; * marks the running one."""
    with open_site(c, env, ui) as site:
        journal = _masked(site)
        recorded = journal.releases()
        journal.warn_damaged(ui.warn)
        if json:
            ui.emit_json(list(reversed(recorded)))
            return
        running = _confirmed(site, recorded)
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
    title = f"releases of {env or 'the default environment'}"
    # Left out last first on a narrow terminal: the tag is what one copies from here.
    optional = ["backup", "at", "operator", "sha"]
    ui.table(title, columns, rows, ids={"tag", "backup"}, optional=optional)
    from deploytools.release import rollback_targets

    targets = rollback_targets(recorded, running.get("tag") if running else None)
    named = f"--env {env} " if env else ""
    ui.info(
        f"roll back with `invoke rollback {named}--tag TAG` to: {', '.join(targets)}"
        if targets
        else "no other healthy release to roll back to"
    )


@task(
    help={"env": ENV_HELP, "json": JSON_HELP, "limit": "show at most this many events"},
    positive=["limit"],
)
def history(
    c: Context, ui: Ui, env: str | None = None, json: bool = False, limit: int = 50
) -> None:
    """Show the journal: every step of every deploy and rollback, on every host, with durations
    and results (the site's journal and each host's own, merged by time)."""
    with open_site(c, env, ui) as site:
        _masked(site)
        records = site.history()[-limit:]
    if json:
        ui.emit_json(records)
        return
    rows = [
        [
            r.get("at"),
            r.get("host", ""),
            r.get("kind"),
            r.get("step") or r.get("tag") or r.get("release") or "",
            r.get("duration", ""),
            r.get("error") or r.get("result") or "",
        ]
        for r in records
    ]
    columns = ["at", "host", "event", "step / release", "seconds", "result"]
    ui.table("history", columns, rows, ids={"step / release"})
