"""The database: verified backups, restore, retention, and alembic migrations.

The public API (the deploy pipeline and the ``db.*`` tasks call these; signatures are stable):

    backup(settings, host, ui, *, release=None, verify=True, compose=None, url=None) -> Manifest
    list_backups(settings, host) -> Contents
    find_backup(settings, host, backup_id) -> Manifest
    verify_backup(settings, host, ui, backup_id, *, compose=None) -> Manifest
    restore(settings, host, ui, backup_id, *, compose=None, url=None) -> Manifest
    prune(settings, host, ui, *, dry_run=False) -> PrunePlan
    current_revision(settings, host=None, redactor=None) -> str | None
    pending_revisions(settings, host=None) -> list[str]
    Where(host, runtime, release=None)          runtime: AppAlembic (a Runtime satisfies it)
    upgrade(settings, ui, target="head", *, at, journal=None) -> MigrationResult
    downgrade(settings, ui, target, *, at, journal=None) -> MigrationResult
    downgrade_plan(settings, target, host=None) -> (current, revisions to undo)
    is_reversible(settings, from_rev, to_rev) -> bool
    offline_sql(settings, *, at, start=None, end="head", redactor=None) -> str
    lint(settings, *, at, start="base", end="head", dialect=None, redactor=None) -> LintReport

Migrations run where the app runs (``at``: the host, the runtime and the release); the
revision is read on the host with the database's own client (psql), so a database on a remote
host's loopback needs no tunnel. The offline SQL (``--sql``, the lint) is rendered there too.
db builds no runtime: ``deploytools.runtime.migrations`` builds a ``Where`` from the
environment (``where``: the app as it stands; ``checkout``: the checkout's code, for compose
in an image built for the purpose; ``dialect_only``: the verify gate's, no env file) and holds
``migration_safety``, the lint of every revision that the verify gate and ``db.lint`` run.
"""
from deploytools.db.backup import backup
from deploytools.db.lint import LintReport, lint
from deploytools.db.manifest import Manifest
from deploytools.db.migrate import (
    AppAlembic,
    MigrationResult,
    Where,
    current_revision,
    downgrade,
    downgrade_plan,
    offline_sql,
    pending_revisions,
    upgrade,
)
from deploytools.db.restore import restore
from deploytools.db.retention import PrunePlan, prune
from deploytools.db.revisions import irreversible_between, is_reversible
from deploytools.db.store import Contents, find_backup, list_backups
from deploytools.db.verify import verify_backup

__all__ = [
    "AppAlembic",
    "Contents",
    "LintReport",
    "Manifest",
    "MigrationResult",
    "PrunePlan",
    "Where",
    "backup",
    "current_revision",
    "downgrade",
    "downgrade_plan",
    "find_backup",
    "irreversible_between",
    "is_reversible",
    "lint",
    "list_backups",
    "offline_sql",
    "pending_revisions",
    "prune",
    "restore",
    "upgrade",
    "verify_backup",
]
