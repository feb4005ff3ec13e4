"""db.*: verified backups, restore, retention, and alembic migrations of an environment's database.

Everything that changes the database or its backups runs under the deploy lock, so it never
races a deploy; the work itself lives in ``deploytools.db``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from invoke.context import Context

from deploytools.errors import DeployFailure, OperatorError
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
    from deploytools import db
    from deploytools.ui import Ui
else:
    from deploytools.lazy import lazy

    db = lazy("deploytools.db")

BACKUP_HELP = "backup id, as listed by `invoke db.backups`"
YES_HELP = "do not ask for confirmation (for scripts and CI)"
MB = 1024 * 1024


@task(
    help={
        "env": ENV_HELP,
        "release": "release id or tag to name in the backup (the deploy pipeline passes it)",
        "skip_verify": "do not read the archive back (kept as unverified: retention ignores it)",
        "keep_all": "do not apply retention after the backup",
        "lock_wait": LOCK_WAIT_HELP,
        "json": JSON_HELP,
    }
)
def backup(
    c: Context,
    ui: Ui,
    env: str | None = None,
    release: str | None = None,
    skip_verify: bool = False,
    keep_all: bool = False,
    lock_wait: float = 0.0,
    json: bool = False,
) -> None:
    """Back up the database (pg_dump or SQLite online backup), verify it, then apply retention."""
    site = open_site(c, env, ui)
    conf, host = site.settings, site.primary
    with locked(site, "db.backup", lock_wait):
        manifest = db.backup(conf, host, ui, site.journal, release=release, verify=not skip_verify)
        if not keep_all:
            db.prune(conf, host, ui, site.journal)
    if json:
        ui.emit_json(manifest.summary())
    else:
        ui.result(manifest.id)


@task(help={"env": ENV_HELP, "json": JSON_HELP})
def backups(c: Context, ui: Ui, env: str | None = None, json: bool = False) -> None:
    """List the environment's backups, newest first, and anything left by interrupted runs."""
    site = open_site(c, env, ui)
    conf = site.settings
    contents = db.list_backups(conf, site.primary)
    newest_first = list(reversed(contents.backups))
    if json:
        ui.emit_json(
            {
                "backups": [m.summary() for m in newest_first],
                "broken": [m.id for m in contents.broken],
                "damaged": contents.damaged,
                "leftovers": contents.leftovers,
            }
        )
        return
    rows = [
        [
            m.id,
            f"{m.size / MB:.1f}",
            "yes" if m.verified else "NO",
            m.alembic_revision or "-",
            m.release or "-",
            m.format,
        ]
        for m in newest_first
    ]
    # The id says when (UTC): no column repeats it.
    columns = ["id", "MB", "verified", "revision", "release", "format"]
    if rows:
        ui.table(
            f"backups of {conf.name}", columns, rows, ids={"id", "release"}, optional=["release"]
        )
    else:
        ui.info(f"no backups of {conf.name} yet (invoke db.backup --env {conf.name})")
    for m in contents.broken:
        ui.warn(f"backup {m.id}: archive missing (db.prune removes it)")
    for name in contents.damaged:
        ui.warn(f"manifest {name} is unreadable")
    if contents.leftovers:
        names = ", ".join(contents.leftovers)
        ui.warn(f"leftovers of interrupted runs (db.prune removes them): {names}")


@task(help={"env": ENV_HELP, "backup": BACKUP_HELP})
def verify(c: Context, ui: Ui, env: str | None = None, backup: str = "") -> None:
    """Check a backup: SHA-256 against its manifest, then read the whole archive."""
    site = open_site(c, env, ui)
    db.verify_backup(site.settings, site.primary, ui, _required(backup, "--backup ID"))


@task(help={"env": ENV_HELP, "backup": BACKUP_HELP, "yes": YES_HELP, "lock_wait": LOCK_WAIT_HELP})
def restore(
    c: Context,
    ui: Ui,
    env: str | None = None,
    backup: str = "",
    yes: bool = False,
    lock_wait: float = 0.0,
) -> None:
    """Restore a backup into the environment's database (checksum first; asks unless --yes)."""
    site = open_site(c, env, ui)
    conf, host = site.settings, site.primary
    manifest = db.find_backup(conf, host, _required(backup, "--backup ID"))
    _confirm(
        ui,
        f"restore backup {manifest.id} (taken {manifest.created_at}, revision "
        f"{manifest.alembic_revision or 'none'}) into {conf.name}'s database, replacing its data?",
        yes,
    )
    with locked(site, f"db.restore {manifest.id}", lock_wait):
        db.restore(conf, host, ui, site.journal, manifest.id)


@task(
    help={"env": ENV_HELP, "dry_run": DRY_RUN_HELP, "lock_wait": LOCK_WAIT_HELP, "json": JSON_HELP}
)
def prune(
    c: Context,
    ui: Ui,
    env: str | None = None,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    json: bool = False,
) -> None:
    """Apply retention: keep the newest verified backups and those of the last good releases."""
    site = open_site(c, env, ui)
    conf, host = site.settings, site.primary
    with locked(site, "db.prune", lock_wait):
        plan = db.prune(conf, host, ui, site.journal, dry_run=dry_run)
    if json:
        ui.emit_json(
            {
                "dry_run": dry_run,
                "keep": plan.keep,
                "delete": [m.id for m in plan.delete],
                "leftovers": plan.leftovers,
            }
        )


@task(
    help={
        "env": ENV_HELP,
        "to": "target revision (default: head)",
        "sql": "print the SQL of the pending revisions instead of running them (changes nothing)",
        "since": "with --sql: start after this revision instead of the database's current one",
        "lock_wait": LOCK_WAIT_HELP,
    }
)
def migrate(
    c: Context,
    ui: Ui,
    env: str | None = None,
    to: str = "head",
    sql: bool = False,
    since: str | None = None,
    lock_wait: float = 0.0,
) -> None:
    """Upgrade the database to head (alembic, one transaction, lock timeout with retries)."""
    from deploytools.runtime import migrations

    site = open_site(c, env, ui)
    conf, host = site.settings, site.primary
    if sql:
        text = migrations.checkout_sql(conf, start=since, end=to, host=host, redactor=ui.redact)
        ui.result(text or "-- nothing pending")
        return
    with locked(site, "db.migrate", lock_wait):
        at = migrations.where(conf, host, redactor=ui.redact)
        db.upgrade(conf, ui, to, at=at, journal=site.journal)


@task(help={"env": ENV_HELP, "json": JSON_HELP})
def current(c: Context, ui: Ui, env: str | None = None, json: bool = False) -> None:
    """Show the database's alembic revision and what is pending."""
    site = open_site(c, env, ui)
    conf, host = site.settings, site.primary
    revision = db.current_revision(conf, host, ui.redact)
    pending = db.pending_revisions(conf, host)
    if json:
        ui.emit_json({"revision": revision, "pending": pending})
        return
    ui.result(revision or "base")
    ui.info(f"pending: {', '.join(pending)}" if pending else "up to date")


@task(help={"env": ENV_HELP, "json": JSON_HELP})
def history(c: Context, ui: Ui, env: str | None = None, json: bool = False) -> None:
    """List the migration revisions, newest first, with what deploytools knows about each."""
    revisions = db.revisions.all_revisions(open_site(c, env, ui).settings)
    if json:
        ui.emit_json([vars(r) for r in revisions])
        return
    rows = [
        [
            r.id,
            ",".join(r.down) or "-",
            r.message,
            r.irreversible or "",
            ", ".join(sorted(r.reviewed)) or "",
        ]
        for r in revisions
    ]
    ui.table("migrations", ["revision", "down", "message", "irreversible", "reviewed"], rows)


@task(
    help={
        "env": ENV_HELP,
        "to": "required: the revision to go back to (kept), or base",
        "yes": YES_HELP,
        "lock_wait": LOCK_WAIT_HELP,
    }
)
def downgrade(
    c: Context,
    ui: Ui,
    env: str | None = None,
    to: str = "",
    yes: bool = False,
    lock_wait: float = 0.0,
) -> None:
    """Undo migrations down to --to REV; refuses to pass an irreversible revision."""
    from deploytools.runtime import migrations

    site = open_site(c, env, ui)
    conf, host = site.settings, site.primary
    target = _required(to, "--to REV")
    now, undo = db.downgrade_plan(conf, target, host)
    if not undo:
        ui.info(f"nothing to undo: the database is at {now or 'base'}")
        return
    listed = ", ".join(f"{r.id} ({r.message})" if r.message else r.id for r in undo)
    _confirm(ui, f"downgrade {conf.name} from {now} to {target}, undoing {listed}?", yes)
    with locked(site, f"db.downgrade {target}", lock_wait):
        at = migrations.where(conf, host, redactor=ui.redact)
        db.downgrade(conf, ui, target, at=at, journal=site.journal)


@task(
    help={
        "env": ENV_HELP,
        "pending": "only the revisions the database has not applied (reads its revision)",
        "json": JSON_HELP,
    }
)
def lint(
    c: Context, ui: Ui, env: str | None = None, pending: bool = False, json: bool = False
) -> None:
    """Flag migrations that lock or lose data; errors for a production env unless reviewed."""
    from deploytools.runtime import migrations

    site = open_site(c, env, ui)
    conf = site.settings
    if pending:
        report = migrations.checkout_lint(conf, start=None, host=site.primary, redactor=ui.redact)
    else:
        report = migrations.migration_safety(conf, site.primary, ui.redact)
    if json:
        ui.emit_json([vars(f) for f in report.findings])
    for finding in report.findings:
        (ui.error if finding.severity == "error" else ui.warn)(finding.what)
    if report.errors:
        raise DeployFailure(
            f"{len(report.errors)} unsafe migration step(s) for production environment {conf.name}",
            'change the migration, or after review add reviewed = {"RULE": "why it is safe"} '
            "to the revision",
        )
    if not json:
        ui.success(f"migration lint: {len(report.warnings)} warning(s), no error")


def _required(value: str | None, flag: str) -> str:
    if not value:
        raise OperatorError(f"{flag} is required", f"pass {flag}")
    return value


def _confirm(ui: Ui, question: str, yes: bool) -> None:
    """Ask on the terminal; without one, only ``--yes`` goes ahead."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise OperatorError(
            f"not confirmed: {question}", "pass --yes to confirm without a terminal"
        )
    answer = ui.err.input(ui.redact(question) + " [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise OperatorError("cancelled: nothing was changed")
