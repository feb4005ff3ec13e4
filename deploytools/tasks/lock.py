"""lock.*: see and clear the deploy lock of an environment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke.context import Context

from deploytools.errors import OperatorError
from deploytools.tasks._support import ENV_HELP, JSON_HELP, open_site, task

if TYPE_CHECKING:
    from deploytools.site.lock import DeployLock
    from deploytools.ui import Ui


def _lock(c: Context, env: str | None, ui: Ui) -> DeployLock:
    """The lock on the environment's primary host (its connection is closed with the
    process: a lock task asks one thing)."""
    return open_site(c, env, ui).lock()


@task(help={"env": ENV_HELP, "json": JSON_HELP})
def status(c: Context, ui: Ui, env: str | None = None, json: bool = False) -> None:
    """Show who holds the deploy lock, since when, and whether it looks stale."""
    info = _lock(c, env, ui).status()
    if json:
        ui.emit_json(info)
    elif not info["locked"]:
        ui.result(f"unlocked ({info['path']})")
    else:
        holder = info["holder"] or {}
        rows = [[k, holder.get(k)] for k in ("user", "machine", "pid", "command", "release")]
        rows.append(["stale", info["stale"] or "no"])
        ui.table(f"deploy lock {info['path']}", ["", "value"], rows)


@task(help={"env": ENV_HELP, "force": "required: remove the lock even though another run holds it"})
def release(c: Context, ui: Ui, env: str | None = None, force: bool = False) -> None:
    """Remove a deploy lock left behind by a run that died (needs --force)."""
    if not force:
        raise OperatorError(
            "lock.release removes another run's lock",
            "check `invoke lock.status` first, then pass --force",
        )
    holder = _lock(c, env, ui).force_release()
    ui.success(f"lock released (it was held by {holder.describe() if holder else 'nobody known'})")
