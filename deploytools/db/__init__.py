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
    where(settings, host=None, runtime=None, release=None, redactor=None) -> Where
    upgrade(settings, ui, target="head", *, at=None, journal=None) -> MigrationResult
    downgrade(settings, ui, target, *, at=None, journal=None) -> MigrationResult
    downgrade_plan(settings, target, host=None) -> (current, revisions to undo)
    is_reversible(settings, from_rev, to_rev) -> bool
    offline_sql(settings, *, start=None, end="head", host=None, dialect=None, redactor=None,
                at=None) -> str
    lint(settings, *, start="base", end="head", host=None, dialect=None, redactor=None, at=None)
    migration_safety(settings, host=None, redactor=None) -> LintReport   (verify gate: no host)

Migrations run where the app runs (``at``: the host, the runtime and the release; default this
machine and the app as it stands); the revision is read on ``host`` with the database's own
client (psql), so a database on a remote host's loopback needs no tunnel. The offline SQL
(``--sql``, the lint) is rendered there too: without ``at``, in the checkout's code (compose:
a one-off container of an image built from it for the purpose).
"""

from deploytools.db.backup import backup
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
    where,
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
    "restore",
    "upgrade",
    "verify_backup",
    "where",
]
