"""The database: verified backups, restore, retention, and alembic migrations.

The public API (the deploy pipeline and the ``db.*`` tasks call these; signatures are stable):

    backup(settings, host, ui, *, release=None, verify=True, compose=None, url=None) -> Manifest
    list_backups(settings, host) -> Contents
    find_backup(settings, host, backup_id) -> Manifest
    verify_backup(settings, host, ui, backup_id, *, compose=None) -> Manifest
    restore(settings, host, ui, backup_id, *, compose=None, url=None) -> Manifest
    prune(settings, host, ui, *, dry_run=False) -> PrunePlan
    current_revision(settings, *, url=None) -> str | None
    pending_revisions(settings, *, url=None) -> list[str]
    upgrade(settings, ui, target="head", *, url=None, journal=None) -> MigrationResult
    downgrade(settings, ui, target, *, url=None, journal=None) -> MigrationResult
    downgrade_plan(settings, target, *, url=None) -> (current, revisions to undo)
    is_reversible(settings, from_rev, to_rev) -> bool
    offline_sql(settings, *, start=None, end="head", url=None, dialect=None) -> str
    lint(settings, *, start="base", end="head", url=None, dialect=None) -> LintReport
    migration_safety(settings) -> LintReport          (the verify gate's check)

On a remote environment, ``with reachable_url(settings, host) as url:`` gives a URL that
reaches a database listening on the host's loopback (through ``host.forward``), for ``url=``.
"""

from deploytools.db.backup import backup
from deploytools.db.database import reachable_url
from deploytools.db.lint import LintReport, lint, migration_safety
from deploytools.db.manifest import Manifest
from deploytools.db.migrate import (
    MigrationResult,
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
    "Contents",
    "LintReport",
    "Manifest",
    "MigrationResult",
    "PrunePlan",
    "backup",
    "current_revision",
    "downgrade",
    "downgrade_plan",
    "find_backup",
    "irreversible_between",
    "is_reversible",
    "lint",
    "list_backups",
    "migration_safety",
    "offline_sql",
    "pending_revisions",
    "prune",
    "reachable_url",
    "restore",
    "upgrade",
    "verify_backup",
]
