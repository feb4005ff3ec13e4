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


def running_on(site: Site, recorded: list[dict[str, Any]]) -> dict[str, str | None]:
    """Host -> the recorded release its whole stack runs (its roles' services), None when it
    runs no one release; each host asked at once. A host that cannot be asked is a warning
    and counts as running none."""
    from deploytools.errors import DeployToolsError
    from deploytools.runtime.base import whole_release

    tags = {str(r.get("tag")) for r in recorded}

    def runs(name: str) -> str | None:
        try:
            runtime = site.runtime(site.host(name))
            mine = site.settings.services_on(name, runtime.services())
            return whole_release(runtime, tags, only=mine)
        except (DeployToolsError, OSError) as exc:
            said = exc.problem if isinstance(exc, DeployToolsError) else str(exc)
            site.ui.warn(f"{name}: could not be asked what it runs ({said})")
            return None

    return dict(zip(site.host_names, site.on_each(site.host_names, runs), strict=True))


def _confirmed(
    site: Site, recorded: list[dict[str, Any]], runs: dict[str, str | None]
) -> dict[str, Any] | None:
    """The journal's running release if every host runs it: a start cut short leaves the
    last good release recorded but running nowhere (or on some hosts only)."""
    from deploytools.release import current_release

    record = current_release(recorded)
    if record is None:
        return None
    if set(runs.values()) == {record.get("tag")}:
        return record
    others = sorted(
        {
            f"{tag or 'no release on every service'} on {name}"
            for name, tag in runs.items()
            if tag != record.get("tag")
        }
    )
    site.ui.warn(
        f"the journal says {record.get('tag')} runs, but {'; '.join(others)}: not marked "
        "(see invoke stack.status)"
    )
    return None


@task(help={"env": ENV_HELP, "json": JSON_HELP})
def releases(c: Context, ui: Ui, env: str | None = None, json: bool = False) -> None:
    """List recorded releases (deploys and rollbacks), newest first; * marks the one every host
    runs, and with several hosts a column says which hosts run each."""
    with open_site(c, env, ui) as site:
        journal = _masked(site)
        recorded = journal.releases()
        journal.warn_damaged(ui.warn)
        runs = running_on(site, recorded) if recorded else {}
        several = len(site.host_names) > 1
        if json:
            ui.emit_json(
                [{**r, "running_on": _hosts(r, recorded, runs)} for r in reversed(recorded)]
            )
            return
        running = _confirmed(site, recorded, runs)
    rows = [
        [
            "*" if r is running else "",
            r.get("tag"),
            *([", ".join(_hosts(r, recorded, runs))] if several else []),
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
    columns = ["", "tag", *(["runs on"] if several else []), "action", "result", "sha"]
    columns += ["db revision", "backup", "operator", "at"]
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


def _hosts(
    record: dict[str, Any], recorded: list[dict[str, Any]], runs: dict[str, str | None]
) -> list[str]:
    """The hosts running ``record``'s release, on its newest record only (a tag deployed,
    then rolled back to, has several)."""
    newest = next(r for r in reversed(recorded) if r.get("tag") == record.get("tag"))
    return (
        [name for name, tag in runs.items() if tag == record.get("tag")] if record is newest else []
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
