"""Put a backup back: checksum first, then an all-or-nothing restore, journaled before and after."""

from __future__ import annotations

from collections.abc import Sequence

from deploytools.config import EnvironmentSettings
from deploytools.db.database import open_database
from deploytools.db.engine import Engine, engine_for
from deploytools.db.manifest import Manifest
from deploytools.db.store import BackupStore
from deploytools.db.verify import check_checksum
from deploytools.errors import OperatorError
from deploytools.hosts.base import Host
from deploytools.site.journal import Journal
from deploytools.ui import Ui


def restore(
    settings: EnvironmentSettings,
    host: Host,
    ui: Ui,
    journal: Journal,
    backup_id: str,
    *,
    compose: Sequence[str] | None = None,
    url: str | None = None,
) -> Manifest:
    """Replace the database's contents with backup ``backup_id``; the caller has confirmed.

    PostgreSQL: ``pg_restore --clean --single-transaction``, so a failed restore changes
    nothing; objects created after the backup and absent from it are left in place.
    """
    store = BackupStore(settings, host)
    manifest = store.find(backup_id)
    database = open_database(settings, ui.redact, url=url, say=ui.info)
    if manifest.engine != database.engine:
        raise OperatorError(
            f"backup {backup_id} is a {manifest.engine} backup, the database is {database.engine}",
            "restore it into a database of the same kind",
        )
    if manifest.database != database.name:
        ui.warn(f"backup {backup_id} is of {manifest.database!r}, restoring into {database.name!r}")
    ui.info(f"checking the SHA-256 of {manifest.archive}")
    check_checksum(settings, store, manifest)
    engine = engine_for(settings, host, database, compose)
    before = _revision(engine)
    record = {"backup": backup_id, "database": database.shown, "revision_before": before}
    journal.append("db.restore", **record, result="started")
    ui.info(f"restoring {backup_id} into {database.shown}")
    try:
        engine.restore(store.path(manifest.archive))
    except BaseException as exc:
        journal.append("db.restore", **record, result="failed", error=str(exc))
        raise
    journal.append("db.restore", **record, result="ok", revision_after=manifest.alembic_revision)
    ui.success(
        f"restored {backup_id} (taken {manifest.created_at}, alembic revision "
        f"{manifest.alembic_revision or 'none'}) into {database.shown}"
    )
    return manifest


def _revision(engine: Engine) -> str | None:
    """The revision before the restore; an unreachable server fails here, before any change."""
    try:
        return engine.facts().revision
    except OperatorError:  # a SQLite file that does not exist yet: restore creates it
        return None
