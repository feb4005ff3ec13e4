"""The steps only a deploy has: lint, snapshot, backup, migrate, build, record (which a
rollback ends with too, and which then prunes old release artifacts)."""

from __future__ import annotations

import getpass
import hashlib
from typing import TYPE_CHECKING, Any, Literal

from deploytools.commands import git
from deploytools.errors import DeployFailure, DeployToolsError, OperatorError
from deploytools.release import kept_releases, looks_like_release, take_snapshot
from deploytools.site.lock import DeployLock
from deploytools.steps.base import RunContext

if TYPE_CHECKING:
    from deploytools.db.lint import LintReport
    from deploytools.release import Snapshot as Named


class LintMigrations:
    """The migration-safety lint of the revisions this deploy would apply, on the SQL the
    release being deployed renders (``alembic upgrade --sql`` in its runtime: a one-off
    container of its image, or the app's interpreter in its release directory), as the
    database's own dialect. It runs after the build, before the backup: in production an
    unreviewed finding stops the deploy there, the database untouched; the fix is in the
    migration (or its ``reviewed``), not in the world, hence exit 2."""

    name = "lint migrations"

    def plan(self, ctx: RunContext) -> list[str]:
        """Nothing is built in a dry run, so nothing is rendered: how it would be, and the
        task that lints the checkout now."""
        from deploytools import db

        pending = db.pending_revisions(ctx.settings, ctx.host)
        if not pending:
            return ["no pending revision: nothing to lint"]
        stop = "stops" if ctx.settings.production else "warns of"
        return [
            f"lint pending revision(s) {', '.join(pending)} on the SQL `alembic upgrade --sql`"
            f" renders in release {ctx.release or '<release>'} once built "
            f"({ctx.runtime.kind} runtime)",
            f"an unreviewed finding {stop} the deploy here, before the backup",
            f"the findings now: invoke db.lint --pending --env {ctx.settings.name}",
        ]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        report, skipped = self._lint(ctx)
        if skipped is not None:
            return {"skipped": skipped.problem}
        for finding in report.warnings:
            ctx.ui.warn(finding.what)
        if report.errors:
            rules = dict.fromkeys(f.rule for f in report.errors)
            reviewed = ", ".join(f'"{rule}": "why it is safe"' for rule in rules)
            raise OperatorError(
                f"unsafe migration step(s) for production environment {ctx.settings.name}:\n"
                + "\n".join(f"  {f}" for f in report.errors),
                f"change the migration, or once reviewed add to it: reviewed = {{{reviewed}}}",
            )
        return {"linted": report.revisions, "lint_warnings": len(report.warnings)}

    @staticmethod
    def _lint(ctx: RunContext) -> tuple[LintReport, OperatorError | None]:
        """The report; outside production a lint that cannot run is skipped (the migration
        itself then says what is wrong), in production it stops the deploy."""
        from deploytools import db
        from deploytools.db.lint import LintReport

        at = db.Where(ctx.host, ctx.runtime, ctx.release)
        try:
            # start=None: what the database lacks
            report = db.lint(ctx.settings, at=at, start=None, redactor=ctx.ui.redact)
        except OperatorError as exc:
            if ctx.settings.production:
                raise
            return LintReport(), exc
        return report, None


class Snapshot:
    """Name the release after the commit being deployed."""

    name = "snapshot"

    def __init__(self, lock: DeployLock, allow_dirty: bool) -> None:
        self.lock = lock
        self.allow_dirty = allow_dirty

    def _take(self, ctx: RunContext) -> Named:
        taken = {str(r.get("tag")) for r in ctx.journal.releases()}
        root = str(ctx.settings.root)
        return take_snapshot(
            ctx.control, root, ctx.settings.name, allow_dirty=self.allow_dirty, taken=taken
        )

    def plan(self, ctx: RunContext) -> list[str]:
        """Reads git (nothing changes) so the later steps' plans show the real release tag."""
        snap = self._take(ctx)
        ctx.release = snap.tag
        return [
            " ".join(git.rev_parse()) + f" -> {snap.sha}",
            " ".join(git.status_porcelain()) + (" (dirty: allowed)" if snap.dirty else " (clean)"),
            f"release tag {snap.tag}",
        ]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        snap = self._take(ctx)
        ctx.release = snap.tag
        ctx.facts.sha, ctx.facts.dirty = snap.sha, snap.dirty
        self.lock.note_release(snap.tag)
        return {"tag": snap.tag, "sha": snap.sha, "dirty": snap.dirty}


class Backup:
    """A verified backup; ``fact`` says which it is: the deploy's ``backup``, or a rollback's
    ``safety_backup`` (taken before it changes the database; retention keeps it)."""

    name = "backup"

    def __init__(self, fact: Literal["backup", "safety_backup"] = "backup") -> None:
        self.fact = fact

    def _learn(self, ctx: RunContext, backup: str | None) -> None:
        if self.fact == "backup":
            ctx.facts.backup = backup
        else:
            ctx.facts.safety_backup = backup

    def plan(self, ctx: RunContext) -> list[str]:
        from deploytools.db.database import open_database
        from deploytools.db.engine import engine_for

        if missing := self._no_database_yet(ctx):
            return [missing]
        database = open_database(ctx.settings, ctx.ui.redact)
        # The engine the run's db.backup picks, for the same database and host.
        method = engine_for(ctx.settings, ctx.host, database).method
        where = ctx.settings.database.backup_dir
        return [f"back up {database.shown} by {method} into {where}/, verify by a full read"]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from deploytools import db

        if missing := self._no_database_yet(ctx):
            self._learn(ctx, None)
            return {"backup": None, "skipped": missing.removeprefix("skipped: ")}
        manifest = db.backup(ctx.settings, ctx.host, ctx.ui, ctx.journal, release=ctx.release)
        self._learn(ctx, manifest.id)
        return {"backup": manifest.id, "bytes": manifest.size, "sha256": manifest.sha256}

    @staticmethod
    def _no_database_yet(ctx: RunContext) -> str | None:
        """A fresh checkout's first deploy has no SQLite file: the migration creates it."""
        from deploytools.db.database import open_database

        database = open_database(ctx.settings, ctx.ui.redact)
        if database.path is not None and not database.path.exists():
            return f"skipped: no database yet at {database.path}: the migration creates it"
        return None


class Migrate:
    """alembic upgrade head in the new release, where the app runs; undo returns to the
    revision before (a downgrade in the same release, or a restore)."""

    name = "migrate"

    def plan(self, ctx: RunContext) -> list[str]:
        from deploytools import db

        pending = db.pending_revisions(ctx.settings, ctx.host)
        if not pending:
            return ["alembic: database already at head, nothing to run"]
        return [
            f"alembic upgrade head: {' -> '.join(pending)} (in release "
            f"{ctx.release or '<release>'}, {ctx.runtime.kind} runtime)",
            f"then check that ${ctx.settings.database.url_key}'s database is at head",
        ]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from deploytools import db

        ctx.facts.previous_revision = db.current_revision(ctx.settings, ctx.host, ctx.ui.redact)
        ctx.facts.migration_began = True
        at = db.Where(ctx.host, ctx.runtime, ctx.release)
        result = db.upgrade(ctx.settings, ctx.ui, at=at, journal=ctx.journal)
        ctx.facts.revision = result.after
        return {"from": result.before, "to": result.after, "applied": result.applied}

    def undo(self, ctx: RunContext) -> str:
        from deploytools import db

        if not ctx.facts.migration_began:
            return "nothing to undo (the migration did not start)"
        before = ctx.facts.previous_revision
        now = db.current_revision(ctx.settings, ctx.host, ctx.ui.redact)
        if now == before:
            return f"database still at {before or 'base'}"
        if db.is_reversible(ctx.settings, now, before):
            at = db.Where(ctx.host, ctx.runtime, ctx.release)
            db.downgrade(ctx.settings, ctx.ui, before or "base", at=at, journal=ctx.journal)
            return f"database downgraded {now} -> {before or 'base'}"
        backup = restore_backup(ctx, ctx.facts.backup, f"{now} -> {before or 'base'}")
        return f"database restored from backup {backup} (a revision in between is irreversible)"


def restore_backup(ctx: RunContext, backup: str | None, change: str) -> str:
    """Restore ``backup`` to take the database back over ``change``, which no migration can
    undo; none was taken when there was no database yet (a first SQLite deploy)."""
    from deploytools import db

    if backup is None:
        raise DeployFailure(
            f"the database cannot be taken back ({change}): a revision on the way is "
            "irreversible and no backup was taken (there was no database before this run)",
            "remove the database file this run created, or restore it by hand",
        )
    db.restore(ctx.settings, ctx.host, ctx.ui, ctx.journal, backup)
    return backup


class MakeWheels:
    """``releases.wheels``: the release's wheels made on the control machine (once, for every
    host lacking its virtualenv) and checked against each host's interpreter, in a stage of
    its own before the build: a requirement that cannot be made into a wheel, or a host that
    could not install them, fails the deploy before any host receives anything."""

    name = "make wheels"

    def plan(self, ctx: RunContext) -> list[str]:
        requirements = ctx.settings.releases.venv
        return [
            f"if {ctx.host.name} lacks the virtualenv of the release's {requirements}: pip "
            f"wheel -r {requirements} on the control machine (once for every host), then "
            f"the wheels' platform checked against {ctx.host.name}'s interpreter"
        ]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        return ctx.runtime.prepare_build(ctx.release)


class Build:
    name = "build"

    def plan(self, ctx: RunContext) -> list[str]:
        return ctx.runtime.plan_build(ctx.release or "<release>")

    def run(self, ctx: RunContext) -> dict[str, Any]:
        images = ctx.runtime.build(ctx.release)
        ctx.facts.images = images
        return {"images": images}


class Record:
    """Write the release manifest to the journal and tag the commit; then apply release
    retention (``prune_releases``), its outcome in the step's journal line.

    ``final``: the point of no return. A signal during it waits for it to end (a few
    milliseconds), so a release is never recorded ok and then undone.
    """

    name = "record"
    final = True

    def __init__(self, action: str = "deploy") -> None:
        self.action = action

    def plan(self, ctx: RunContext) -> list[str]:
        tag = ctx.release or "<release tag>"
        lines = [f"append a release record to {ctx.journal.path}"]
        if self.action == "deploy":
            lines.append(" ".join(git.tag(tag, "<sha>")))
        return [*lines, *plan_prune(ctx)]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        if self.action == "deploy":
            ctx.control.run(git.tag(ctx.release, str(ctx.facts.sha)), cwd=str(ctx.settings.root))
        record = release_record(ctx, self.action, "ok")
        pruned = prune_releases(ctx)
        return {"recorded": record["tag"], "revision": record.get("revision"), **pruned}


def plan_prune(ctx: RunContext) -> list[str]:
    """What ``prune_releases`` would remove once this run's release is recorded good."""
    stored = _stored(ctx)
    after = [*ctx.journal.releases(), {"tag": ctx.release or "<release tag>", "result": "ok"}]
    keep = _kept(ctx, after, running=set())
    doomed = [tag for tag in stored if tag not in keep]
    last = ctx.settings.releases.keep
    if not doomed:
        return [f"release retention (releases.keep = {last}): none to remove"] if stored else []
    return [f"release retention: remove release {tag} (not among the last {last} good"
            " releases, not running)" for tag in doomed]  # fmt: skip


def prune_releases(ctx: RunContext) -> dict[str, Any]:
    """Retention of release artifacts once the release is recorded: keep those of the last
    ``releases.keep`` good releases and any a service was last started on (its PID file or
    container names it); remove the others the deploys made (``release-<env>-…``, a failed
    deploy's included; names given by hand never).

    It never fails the run (the release is recorded healthy): a prune that cannot finish is
    said, and the next run prunes the rest. Returns what the record's journal line shows."""
    removed: list[str] = []
    try:
        stored = _stored(ctx)
        if not stored:
            return {}
        running = {s.release for s in ctx.runtime.status().values() if s.release}
        keep = _kept(ctx, ctx.journal.releases(), running)
        for tag in stored:
            if tag not in keep:
                ctx.runtime.remove_release(tag)
                removed.append(tag)
    except (OSError, DeployToolsError) as exc:
        ctx.ui.warn(f"release retention stopped (the release is recorded): {exc}")
        return {"pruned": removed, "prune_error": str(exc)}
    return {"pruned": removed, "kept": sorted(keep)}


def _stored(ctx: RunContext) -> list[str]:
    """The deploys' own releases stored on the host, oldest first."""
    return [t for t in ctx.runtime.stored_releases() if looks_like_release(ctx.settings.name, t)]


def _kept(ctx: RunContext, releases: list[dict[str, Any]], running: set[str]) -> dict[str, str]:
    """Tag -> why it stays: among the last good releases, or a service's (this run's too)."""
    keep = kept_releases(releases, ctx.settings.releases.keep)
    for tag in sorted(running | {ctx.release}):
        keep.setdefault(tag, "running")
    return keep


def release_record(ctx: RunContext, action: str, result: str, **extra: Any) -> dict[str, Any]:
    """The release manifest: everything a later rollback or audit needs to know."""
    env_path = ctx.settings.path(ctx.settings.env_file)
    env_hash = hashlib.sha256(env_path.read_bytes()).hexdigest() if env_path.is_file() else None
    return ctx.journal.append(
        "release",
        action=action,
        result=result,
        tag=ctx.release,
        sha=ctx.facts.sha,
        dirty=ctx.facts.dirty,
        images=ctx.facts.images,
        revision=ctx.facts.revision,
        backup=ctx.facts.backup,
        safety_backup=ctx.facts.safety_backup,  # a rollback's: retention keeps it
        env_hash=env_hash,
        flags=ctx.facts.flags,  # the flag state (empty: none set, FEATURE_* in the env file)
        flags_stage=ctx.facts.flags_stage,
        operator=getpass.getuser(),
        host=ctx.host.name,
        # Where the images went through a registry: the digests a rollback pulls.
        **({"pushed": ctx.facts.pushed} if ctx.facts.pushed else {}),
        **extra,
    )
