"""The steps only a rollback has: bring back a tagged release's images and database revision."""

from __future__ import annotations

from typing import Any

from deploytools.artifacts import plan_restore, restore_images
from deploytools.config import EnvironmentSettings
from deploytools.errors import OperatorError
from deploytools.steps.base import RunContext


class PrepareRelease:
    """The tag's own config, and its images by the ids recorded with it: re-tagged when only
    the tag is gone, else built from a separate git worktree of its commit."""

    name = "prepare release"

    def plan(self, ctx: RunContext) -> list[str]:
        made = [ctx.made_with] if ctx.made_with else []
        return [*made, *plan_restore(ctx.settings, ctx.runtime, ctx.journal, ctx.release)]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        done = restore_images(ctx.settings, ctx.runtime, ctx.journal, ctx.release, why="rollback")
        ctx.facts["images"] = done["images"]
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

        now = db.current_revision(ctx.settings)
        if now == self.target:
            return [f"database already at {self.target or 'base'}"]
        if self.restore:
            return [f"restore backup {self.target_backup} (revision {self.target or 'base'})"]
        way = "upgrade" if rolls_forward(ctx.settings, now, self.target) else "downgrade"
        return [f"alembic {way} {now or 'base'} -> {self.target or 'base'}"]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from deploytools import db

        now = db.current_revision(ctx.settings)
        ctx.facts["previous_revision"] = now
        ctx.facts["revision"] = self.target
        if now == self.target:
            return {"revision": self.target, "changed": False}
        if self.restore and self.target_backup:
            db.restore(ctx.settings, ctx.host, ctx.ui, self.target_backup)
            ctx.facts["db_action"] = "restore"
        elif self.target and rolls_forward(ctx.settings, now, self.target):
            db.upgrade(ctx.settings, ctx.ui, self.target, journal=ctx.journal)
            ctx.facts["db_action"] = "upgrade"
        else:
            db.downgrade(ctx.settings, ctx.ui, self.target or "base", journal=ctx.journal)
            ctx.facts["db_action"] = "downgrade"
        return {"from": now, "to": self.target, "how": ctx.facts["db_action"]}

    def undo(self, ctx: RunContext) -> str:
        from deploytools import db

        before = ctx.facts.get("previous_revision")
        action = ctx.facts.get("db_action")
        if action is None:
            return "database unchanged"
        if action == "downgrade" and before:
            db.upgrade(ctx.settings, ctx.ui, before, journal=ctx.journal)
            return f"database upgraded back to {before}"
        if action == "upgrade":
            db.downgrade(ctx.settings, ctx.ui, before or "base", journal=ctx.journal)
            return f"database downgraded back to {before or 'base'}"
        backup = ctx.facts["safety_backup"]
        db.restore(ctx.settings, ctx.host, ctx.ui, backup)
        return f"database restored from {backup}, taken before the rollback"


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
