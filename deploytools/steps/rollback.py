"""The steps only a rollback has: bring back a tagged release's images and database revision."""

from __future__ import annotations

import os
import posixpath
import shutil
from pathlib import Path
from typing import Any

from deploytools.commands import git
from deploytools.config import EnvironmentSettings
from deploytools.errors import OperatorError
from deploytools.hosts.local import LocalHost
from deploytools.steps.base import RunContext


class PrepareRelease:
    """Reuse the tag's images when present; else build them from a separate git worktree."""

    name = "prepare release"

    def plan(self, ctx: RunContext) -> list[str]:
        if ctx.runtime.has_release(ctx.release):
            return [f"images of {ctx.release} are present: no build"]
        tree = self._worktree(ctx)
        inputs = _untracked_inputs(ctx.settings)
        return [
            " ".join(git.worktree_add(tree, ctx.release)),
            *([f"link untracked build inputs: {', '.join(inputs)}"] if inputs else []),
            *ctx.runtime.plan_build(ctx.release),
            " ".join(git.worktree_remove(tree)),
        ]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        if ctx.runtime.has_release(ctx.release):
            return {"built": False}
        tree = self._worktree(ctx)
        local, repo = LocalHost(), str(ctx.settings.root)
        local.run(git.worktree_add(tree, ctx.release), cwd=repo)
        try:
            # Same env file, state and data, other code: build from the tag, never from the
            # user's working tree (what git does not track comes from it: untracked_inputs).
            for name in _untracked_inputs(ctx.settings):
                _link_tree(ctx.settings.path(name), ctx.settings.root / tree / name)
            images = ctx.runtime.build(ctx.release, source=ctx.settings.root / tree)
        finally:
            local.run(git.worktree_remove(tree), cwd=repo, check=False)
        ctx.facts["images"] = images
        return {"built": True, "images": images}

    @staticmethod
    def _worktree(ctx: RunContext) -> str:
        return f"{ctx.settings.state_dir}/{ctx.settings.name}/worktrees/{ctx.release}"


def _untracked_inputs(settings: EnvironmentSettings) -> list[str]:
    """compose.untracked_inputs, relative to the project root."""
    conf = settings.compose
    if conf is None:
        return []
    return [posixpath.join(conf.directory, name) for name in conf.untracked_inputs]


def _link_tree(source: Path, target: Path) -> None:
    """Hard links of ``source`` at ``target`` (copies across file systems); a no-op if absent."""
    if not source.exists() or target.exists():
        return
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_link_or_copy)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(str(source), str(target))


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


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
