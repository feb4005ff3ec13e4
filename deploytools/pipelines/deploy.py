"""The deploy pipeline: the steps of a deploy, here or over the environment's hosts."""

from __future__ import annotations

from deploytools.pipeline.engine import PipelineResult, Stage
from deploytools.pipelines.run import context, run
from deploytools.pipelines.stages import checks, made, pushed, registry_of, rolled
from deploytools.site import Site
from deploytools.site.lock import DeployLock
from deploytools.steps.common import Start, TakeLock, ValidateEnv
from deploytools.steps.deploy import (
    Backup,
    Build,
    LintMigrations,
    MakeWheels,
    Migrate,
    Record,
    Snapshot,
)
from deploytools.steps.flags import KeepFlags
from deploytools.steps.hosts import CheckHost, OnHosts


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
    registry = images and registry_of(site) is not None
    wheels = remote and site.settings.runtime == "process" and site.settings.releases.wheels
    steps = deploy_steps(
        lock, command, lock_wait, dirty,
        remote=remote, ship_images=images, registry=registry, wheels=wheels,
    )  # fmt: skip
    return run("deploy", steps, ctx, lock)


def deploy_steps(
    lock: DeployLock,
    command: str,
    lock_wait: float,
    allow_dirty: bool,
    *,
    remote: bool = False,
    ship_images: bool = False,
    registry: bool = False,
    wheels: bool = False,
) -> list[Stage]:
    """A deploy's stages, in the order they run (and are planned). ``remote``: the
    environment's hosts, checked first, built on at once, then rolled out to;
    ``ship_images``: built once, on the primary, and shipped to the others (compose);
    ``registry``: shipped through the registry, pushed once and pulled; ``wheels``: the
    release's wheels made (``releases.wheels``) for every host before the build ships any."""
    return [
        ValidateEnv(),
        *([OnHosts("check hosts", [CheckHost()], rolling=False)] if remote else []),
        TakeLock(lock, command, lock_wait),
        Snapshot(lock, allow_dirty),
        # First of what changes anything, and nothing stops for it: the new images or release
        # directory, which the lint then renders the migrations' SQL in (the app's code and
        # packages are there, not on this machine). A failed build leaves the database alone,
        # and the old code meets the new schema only for the moment between migrate and start.
        *([OnHosts("make wheels", [MakeWheels()], rolling=False, with_primary=True)]
          if wheels else []),
        *(pushed() if registry else made(Build(), remote, ship_images)),
        # Under the lock, so the revisions linted are those the migration will apply; before
        # the backup, so a refused migration takes none and changes nothing that runs.
        LintMigrations(),
        Backup(),
        Migrate(),
        KeepFlags(),
        *(rolled() if remote else [Start(), checks()]),
        Record("deploy"),
    ]
