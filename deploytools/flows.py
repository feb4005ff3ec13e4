"""Deploy and rollback as pipelines: build the steps, run them under the lock, report.

The lock is taken by a step (so it shows in the plan and the progress view) and released here,
in ``finally``: on success, failure, Ctrl-C and SIGTERM alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from deploytools.errors import DeployFailure, OperatorError
from deploytools.interrupts import INTERRUPTS
from deploytools.pipeline.engine import Pipeline, PipelineResult, Stage, Together
from deploytools.progress import Progress
from deploytools.release import (
    check_tag_name,
    current_release,
    good_releases,
    recorded_images,
    rollback_targets,
)
from deploytools.site import Site
from deploytools.site.lock import DeployLock
from deploytools.steps.base import RunContext, Step
from deploytools.steps.common import (
    Start,
    TakeLock,
    ValidateEnv,
    VerifyCelery,
    WaitHealthy,
    healthy_again,
    verify_running,
)
from deploytools.steps.deploy import (
    Backup,
    Build,
    LintMigrations,
    Migrate,
    Record,
    Snapshot,
    release_record,
)
from deploytools.steps.hosts import CheckHost, OnHosts
from deploytools.steps.rollback import PrepareRelease, ReturnDatabase, rolls_forward
from deploytools.steps.ship import PlaceComposeFiles, PullImages, PushImages, ShipImages
from deploytools.ui import Ui


def context(site: Site, *, dry_run: bool) -> tuple[RunContext, DeployLock]:
    primary = site.primary
    values = site.values_for(primary.name)
    ctx = RunContext(site.settings, primary, site.ui, site.journal, values, site, dry_run=dry_run)
    previous = current_release(ctx.journal.releases())
    ctx.journal.warn_damaged(site.ui.warn)
    ctx.facts.previous_release = previous["tag"] if previous else None
    return ctx, site.lock()


def deploy(
    site: Site,
    *,
    command: str,
    dry_run: bool = False,
    allow_dirty: bool = False,
    lock_wait: float = 0.0,
) -> PipelineResult | None:
    ctx, lock = context(site, dry_run=dry_run)
    dirty = allow_dirty or site.settings.name == "local"
    remote = bool(site.settings.hosts)
    images = remote and site.settings.runtime == "compose"
    registry = images and _registry(site) is not None
    steps = deploy_steps(
        lock, command, lock_wait, dirty, remote=remote, ship_images=images, registry=registry
    )
    return _run("deploy", steps, ctx, lock)


def deploy_steps(
    lock: DeployLock,
    command: str,
    lock_wait: float,
    allow_dirty: bool,
    *,
    remote: bool = False,
    ship_images: bool = False,
    registry: bool = False,
) -> list[Stage]:
    """A deploy's stages, in the order they run (and are planned). ``remote``: the
    environment's hosts, checked first, built on at once, then rolled out to;
    ``ship_images``: built once, on the primary, and shipped to the others (compose);
    ``registry``: shipped through the registry, pushed once and pulled."""
    return [
        ValidateEnv(),
        *([OnHosts("check hosts", [CheckHost()], rolling=False)] if remote else []),
        TakeLock(lock, command, lock_wait),
        Snapshot(lock, allow_dirty),
        # First of what changes anything, and nothing stops for it: the new images or release
        # directory, which the lint then renders the migrations' SQL in (the app's code and
        # packages are there, not on this machine). A failed build leaves the database alone,
        # and the old code meets the new schema only for the moment between migrate and start.
        *(_pushed() if registry else _made(Build(), remote, ship_images)),
        # Under the lock, so the revisions linted are those the migration will apply; before
        # the backup, so a refused migration takes none and changes nothing that runs.
        LintMigrations(),
        Backup(),
        Migrate(),
        *(_rolled() if remote else [Start(), verify()]),
        Record("deploy"),
    ]


def _made(step: Step, remote: bool, ship_images: bool) -> list[Stage]:
    """``step`` (the build, a rollback's prepare) here; on every host at once; or on the
    primary, and what it made shipped from there to the other hosts, which then need neither
    a checkout nor a build (compose: images go engine to engine)."""
    if ship_images:
        shipped = OnHosts(
            "ship images", [ShipImages(), PlaceComposeFiles()], rolling=False, others=True
        )
        return [step, shipped]
    return [OnHosts(step.name, [step], rolling=False, with_primary=True) if remote else step]


def _pushed() -> list[Stage]:
    """Built on the primary, pushed from there to the registry once, pulled by the other
    hosts (with the compose files and env file they need, as when streamed)."""
    pulled = OnHosts("pull images", [PullImages(), PlaceComposeFiles()], rolling=False, others=True)
    return [Build(), PushImages(), pulled]


def _pulled_back() -> list[Stage]:
    """A rollback's images through the registry: every host that lacks one by id, the
    primary first, pulls the digest recorded with the release; then the primary prepares
    it (its config, a tag given back) and the others get its compose files."""
    pulled = OnHosts("pull images", [PullImages()], rolling=False, with_primary=True)
    placed = OnHosts("place compose files", [PlaceComposeFiles()], rolling=False, others=True)
    return [pulled, PrepareRelease(), placed]


def _registry(site: Site) -> str | None:
    conf = site.settings.compose
    return conf.registry.url if conf is not None and conf.registry is not None else None


def _rolled() -> list[Stage]:
    """Start and wait healthy host by host as the rollout policy says (the hosts not yet
    switched run the old code on the new schema meanwhile: the lint keeps that safe), then
    the Celery workers of every host at once, all on the new release."""
    rollout = OnHosts("roll out", [Start(), WaitHealthy()], rolling=True, verify_back=healthy_again)
    return [rollout, VerifyCelery()]


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
    if images and _registry(site) is not None:
        prepare = _pulled_back()
    else:
        prepare = _made(PrepareRelease(), remote, images)
    steps: list[Stage] = [
        ValidateEnv(),
        *([OnHosts("check hosts", [CheckHost()], rolling=False)] if remote else []),
        TakeLock(lock, command, lock_wait),
        *prepare,
        *safety,
        *(_rolled() if remote else [Start(), verify()]),
        Record("rollback"),
    ]
    return _run("rollback", steps, ctx, lock)


def verify() -> Together:
    """Health and Celery at once: the backend and the workers start together and boot apart,
    so the two waits overlap instead of adding up. Both only look, and stop when told to:
    steps that run commands (a backup, a build) stay in line, since a command in a thread
    would outlive a SIGTERM."""
    return Together((WaitHealthy(), VerifyCelery()))


def _run(
    name: str, steps: Sequence[Stage], ctx: RunContext, lock: DeployLock
) -> PipelineResult | None:
    pipeline = Pipeline(name, steps, after_undo=_verify_previous)
    with _scratch(ctx):
        # An undo starts the release that runs now as it was: that its config can be read
        # from its commit is known before anything changes.
        if previous := ctx.facts.previous_release:
            ctx.for_release(previous)
        if ctx.dry_run:
            show_plan(ctx.ui, pipeline.plan(ctx))
            return None
    # From here a signal never cuts the journal short: the pipeline takes it where it can
    # stop (a step), and the failed release's record and the lock's release always happen.
    with INTERRUPTS.deferred():
        try:
            with Progress(ctx.ui) as progress:
                result = pipeline.run(ctx, progress)
            if not result.ok and ctx.release:
                left = result.abandoned
                abandoned = {"undo_abandoned": left} if left is not None else {}
                release_record(
                    ctx,
                    name,
                    "failed",
                    failed_step=result.failed_step,
                    error=result.error,
                    **abandoned,
                )
        finally:
            lock.release()
        if INTERRUPTS.pending:
            ctx.ui.warn(f"{INTERRUPTS.pending} after the {name} had ended: nothing more to stop")
    return result


@contextlib.contextmanager
def _scratch(ctx: RunContext) -> Iterator[None]:
    """What a dry run wrote to read releases' config is gone when its plan has been shown."""
    try:
        yield
    finally:
        for host, directory in ctx.scratch:
            host.remove(directory)


def _verify_previous(ctx: RunContext) -> str | None:
    """After an undo, the release that ran before must answer again (``Start`` learnt which
    one); when nothing ran before, there is nothing to verify."""
    previous = ctx.facts.previous_release
    return verify_running(ctx, previous) if previous else None


def show_plan(ui: Ui, plan: list[tuple[str, list[str]]]) -> None:
    if ui.json_mode:
        ui.emit_json({"plan": [{"step": name, "actions": lines} for name, lines in plan]})
        return
    ui.table(
        "plan (dry run: nothing is changed)",
        ["step", "would do"],
        [[name, "\n".join(lines)] for name, lines in plan],
    )


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
