"""flags.*: see and change the feature flags of an environment (config/flags.toml, the state
file apps read). The work lives in ``deploytools.flags``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke.context import Context

from deploytools.errors import OperatorError
from deploytools.tasks._support import (
    DRY_RUN_HELP,
    ENV_HELP,
    JSON_HELP,
    LOCK_WAIT_HELP,
    locked,
    open_site,
    task,
)

if TYPE_CHECKING:
    from deploytools.site import Site
    from deploytools.ui import Ui


def _site(c: Context, env: str | None, ui: Ui) -> Site:
    """The environment's Site; this first slice of flags acts on one local machine only."""
    site = open_site(c, env, ui)
    if site.settings.remote or site.settings.runtime != "process":
        raise OperatorError(
            f"flags.* works on a local process environment for now ({site.settings.name} is "
            f"{'remote' if site.settings.remote else site.settings.runtime})",
            "use a local process environment (its hosts and compose come later)",
        )
    return site


@task(name="list", help={"env": ENV_HELP, "json": JSON_HELP})
def list_(c: Context, ui: Ui, env: str | None = None, json: bool = False) -> None:
    """Show every flag: its state, the stage applied, who changed it and when."""
    from deploytools.flags.change import listing, state_path

    with _site(c, env, ui) as site:
        rows = listing(site)
        if json:
            ui.emit_json(rows)
            return
        ui.table(
            f"flags of {site.settings.name} ({state_path(site)})",
            ["flag", "state", "stage", "changed", "by"],
            [
                [
                    r["flag"] + ("" if r["in_plan"] else " (not in the plan)"),
                    r["state"] if r["set"] else f"{r['state']} (default, not set)",
                    r["stage"] or "",
                    r["changed_at"] or "",
                    r["changed_by"] or "",
                ]
                for r in rows
            ],
        )


@task(
    name="set",
    help={
        "name": "the flag, as config/flags.toml names it",
        "value": "on, off or a percentage 0-100 of the keys (users) that get the feature",
        "env": ENV_HELP,
        "dry_run": DRY_RUN_HELP,
        "lock_wait": LOCK_WAIT_HELP,
    },
)
def set_(
    c: Context,
    ui: Ui,
    name: str,
    value: str,
    env: str | None = None,
    dry_run: bool = False,
    lock_wait: float = 0.0,
) -> None:
    """Set one flag to on, off or a percentage, now (journaled; apps see it within 0.2 s)."""
    from deploytools.flags.change import apply, plan_set

    with _site(c, env, ui) as site:
        change = plan_set(site, name, value)
        if dry_run:
            ui.result(f"would set {change.describe()}")
            return
        with locked(site, f"flags.set {name} {value}", lock_wait):
            apply(site, change)
        ui.success(f"set {change.describe()}")
