"""The rollback pipeline: back to a recorded release, its code, images and database revision."""

from __future__ import annotations

from typing import Any

from deploytools.errors import DeployFailure, OperatorError
from deploytools.pipeline.engine import PipelineResult, Stage
from deploytools.pipelines.run import context, run
from deploytools.pipelines.stages import checks, made, pulled_back, registry_of, rolled
from deploytools.release import check_tag_name, good_releases, recorded_images, rollback_targets
from deploytools.site import Site
from deploytools.steps.base import RunContext
from deploytools.steps.common import Start, TakeLock, ValidateEnv
from deploytools.steps.deploy import Backup, Record
from deploytools.steps.flags import KeepFlags
from deploytools.steps.hosts import CheckHost, OnHosts
from deploytools.steps.rollback import PrepareRelease, ReturnDatabase, rolls_forward


def rollback(
    site: Site,
    tag: str,
    *,
    command: str,
    dry_run: bool = False,
    restore_db: bool = False,
    lock_wait: float = 0.0,
) -> PipelineResult | None:
    ctx, lock = context(site, dry_run=dry_run)
    settings = site.settings
    target = _rollback_target(ctx, tag)
    ctx.release = tag
    ctx.facts.sha = target.get("sha")
    ctx.facts.images = recorded_images(ctx.journal.records(), tag)
    ctx.facts.pushed = dict(target.get("pushed") or {})
    ctx.facts.backup = target.get("backup")
    from deploytools import db

    revision, now = target.get("revision"), db.current_revision(settings, ctx.host, ctx.ui.redact)
    ctx.facts.revision = revision  # recorded even when the database needs no change
    database = ReturnDatabase(
        revision, target.get("backup"), _must_restore(ctx, now, revision, target, restore_db)
    )
    # A backup first whenever the database will change: the undo (or a person) may need it.
    safety: list[Stage] = [Backup(fact="safety_backup"), database] if now != revision else []
    # From here on the tag's own config and compose files: its services, probes, Celery.
    ctx = ctx.for_release(tag)
    remote = bool(settings.hosts)
    images = remote and settings.runtime == "compose"
    # Where the tag's images are gone, built again on the primary only, and shipped (compose),
    # or pulled by the digests recorded with it (a registry).
    if images and registry_of(site) is not None:
        prepare = pulled_back()
    else:
        prepare = made(PrepareRelease(), remote, images)
    steps: list[Stage] = [
        ValidateEnv(),
        *([OnHosts("check hosts", [CheckHost()], rolling=False)] if remote else []),
        TakeLock(lock, command, lock_wait),
        *prepare,
        *safety,
        KeepFlags(),
        *(rolled() if remote else [Start(), checks()]),
        Record("rollback"),
    ]
    return run("rollback", steps, ctx, lock)


def _rollback_target(ctx: RunContext, tag: str) -> dict[str, Any]:
    """The recorded release of ``tag``; refuse with the usable tags if there is none."""
    repo = str(ctx.settings.root)
    check_tag_name(ctx.control, repo, tag)
    releases = ctx.journal.releases()
    usable = [r for r in good_releases(releases) if r.get("action", "deploy") == "deploy"]
    known = {r["tag"]: r for r in usable}
    from deploytools.commands import git

    in_git = ctx.control.run(git.tag_exists(tag), cwd=repo, check=False).returncode == 0
    running = _running_now(ctx, {str(r.get("tag")) for r in releases}) if known else None
    if tag not in known or not in_git:
        why = "is not a git tag" if not in_git else "has no recorded successful release"
        tags = ", ".join(rollback_targets(releases, running)[-10:]) or (
            f"none yet ({running} runs now: deploy another first)"
            if running
            else "none yet (deploy first)"
        )
        raise OperatorError(
            f"tag {tag!r} {why} in environment {ctx.settings.name}",
            f"roll back to one of: {tags}",
        )
    if running == tag:
        raise OperatorError(
            f"release {tag} is already running in {ctx.settings.name}", "nothing to do"
        )
    return known[tag]


def _running_now(ctx: RunContext, recorded: set[str]) -> str | None:
    """What runs, as the runtime shows it (every service on one release): after a start cut
    short the journal's last good release may run nowhere. The journal's word only when the
    runtime cannot be asked (the validation then says why)."""
    from deploytools.runtime.base import whole_release

    try:
        return whole_release(ctx.runtime, recorded)
    except DeployFailure:
        previous: str | None = ctx.facts.previous_release
        return previous


def _must_restore(
    ctx: RunContext, now: str | None, revision: str | None, target: dict[str, Any], restore: bool
) -> bool:
    """Downgrade (or upgrade, back to a newer release) when possible; past an irreversible
    revision only ``--restore-db`` goes on."""
    from deploytools import db

    if (
        now == revision
        or rolls_forward(ctx.settings, now, revision)
        or db.is_reversible(ctx.settings, now, revision)
    ):
        return False
    if not restore:
        raise OperatorError(
            f"going back from revision {now} to {revision or 'base'} crosses an irreversible "
            "migration",
            f"pass --restore-db to restore backup {target.get('backup')} recorded with that "
            "release (data written since then is lost)",
        )
    if not target.get("backup"):
        raise DeployFailure(f"release {target['tag']} recorded no backup to restore", "")
    return True
