"""The steps only a rollback has: bring back a tagged release's images and database revision."""

from __future__ import annotations

from typing import Any

from deploytools.artifacts import plan_restore, restore_images
from deploytools.config import EnvironmentSettings
from deploytools.errors import OperatorError
from deploytools.steps.base import RunContext
from deploytools.steps.deploy import restore_backup


class PrepareRelease:
    """The tag's own config, and its images by the ids recorded with it: re-tagged when only
    the tag is gone, else built from a separate git worktree of its commit."""

    name = "prepare release"

    def plan(self, ctx: RunContext) -> list[str]:
        made = [ctx.made_with] if ctx.made_with else []
        return [*made, *plan_restore(ctx.settings, ctx.runtime, ctx.journal, ctx.release)]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        done = restore_images(ctx.settings, ctx.runtime, ctx.journal, ctx.release, why="rollback")
        ctx.facts.images = done["images"]
        return done


class ReturnDatabase:
    """Bring the database to the tag's recorded revision: downgrade (upgrade for a newer
    release), or restore its backup."""

    name = "database"

    def __init__(
        self, target_revision: str | None, target_backup: str | None, restore: bool
    ) -> None:
        self.target = target_revision
        self.target_backup = target_backup
        self.restore = restore

    def plan(self, ctx: RunContext) -> list[str]:
        from deploytools import db

        now = db.current_revision(ctx.settings, ctx.host)
        if now == self.target:
            return [f"database already at {self.target or 'base'}"]
        if self.restore:
            return [f"restore backup {self.target_backup} (revision {self.target or 'base'})"]
        forward = rolls_forward(ctx.settings, now, self.target)
        way = "upgrade" if forward else "downgrade"
        return [
            f"alembic {way} {now or 'base'} -> {self.target or 'base'} in release "
            f"{_newer(ctx, forward) or 'app_dir'}, then check the database is there"
        ]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from deploytools import db

        now = db.current_revision(ctx.settings, ctx.host, ctx.ui.redact)
        ctx.facts.previous_revision, ctx.facts.migration_began = now, True
        ctx.facts.revision = self.target
        if now == self.target:
            return {"revision": self.target, "changed": False}
        if self.restore and self.target_backup:
            db.restore(ctx.settings, ctx.host, ctx.ui, ctx.journal, self.target_backup)
            ctx.facts.db_action = "restore"
        elif self.target and rolls_forward(ctx.settings, now, self.target):
            at = db.where(ctx.settings, ctx.host, ctx.runtime, _newer(ctx, forward=True))
            db.upgrade(ctx.settings, ctx.ui, self.target, at=at, journal=ctx.journal)
            ctx.facts.db_action = "upgrade"
        else:
            at = db.where(ctx.settings, ctx.host, ctx.runtime, _newer(ctx, forward=False))
            db.downgrade(ctx.settings, ctx.ui, self.target or "base", at=at, journal=ctx.journal)
            ctx.facts.db_action = "downgrade"
        return {"from": now, "to": self.target, "how": ctx.facts.db_action}

    def undo(self, ctx: RunContext) -> str:
        from deploytools import db

        before = ctx.facts.previous_revision
        action = ctx.facts.db_action
        if action is None:
            return "database unchanged"
        if action == "upgrade" or (action == "downgrade" and before):
            # Back, in the release whose migrations have both revisions.
            at = db.where(ctx.settings, ctx.host, ctx.runtime, _newer(ctx, action == "upgrade"))
            if action == "upgrade":
                db.downgrade(ctx.settings, ctx.ui, before or "base", at=at, journal=ctx.journal)
                return f"database downgraded back to {before or 'base'}"
            db.upgrade(ctx.settings, ctx.ui, str(before), at=at, journal=ctx.journal)
            return f"database upgraded back to {before}"
        change = f"{self.target or 'base'} -> {before or 'base'}"
        backup = restore_backup(ctx, ctx.facts.safety_backup, change)
        return f"database restored from {backup}, taken before the rollback"


def _newer(ctx: RunContext, forward: bool) -> str | None:
    """The release whose migrations know both revisions: the target when rolling forward,
    else the one running before the rollback (only it has the downgrades of its revisions)."""
    return ctx.release if forward else ctx.facts.previous_release


def rolls_forward(settings: EnvironmentSettings, now: str | None, target: str | None) -> bool:
    """The target release's revision is above the database's (back to a newer release)."""
    from deploytools.db.revisions import between, resolve, script_directory

    if target is None or now == target:
        return False
    script = script_directory(settings)
    try:
        return bool(between(script, resolve(script, target), resolve(script, now) if now else None))
    except OperatorError:  # not an ancestor: the target is below or on another branch
        return False
