"""Take a backup: check space, dump under a temporary name, verify, hash, rename, write manifest.

Any failure on the way (the dump fails or is killed, the disk fills, verification finds the
archive unreadable) removes the temporary file and is journaled: no file ever carries a
backup's name unless the backup is complete, and verified unless verification was skipped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from deploytools.config import EnvironmentSettings
from deploytools.db import files
from deploytools.db.database import open_database
from deploytools.db.engine import Engine, engine_for
from deploytools.db.manifest import Manifest
from deploytools.db.store import BackupStore
from deploytools.errors import DeployFailure
from deploytools.hosts.base import Host
from deploytools.site.journal import Journal
from deploytools.ui import Ui

MB = 1024 * 1024


def backup(
    settings: EnvironmentSettings,
    host: Host,
    ui: Ui,
    journal: Journal,
    *,
    release: str | None = None,
    verify: bool = True,
    compose: Sequence[str] | None = None,
    url: str | None = None,
) -> Manifest:
    """Back up the environment's database into its backup directory on ``host``.

    ``release`` (a deploy's release id or tag) goes into the id and the manifest;
    ``verify=False`` keeps the archive unverified (retention never counts such a backup);
    ``compose`` is the stack's ``docker compose ...`` prefix for ``dump_via_service``;
    ``url`` overrides the env file's URL (e.g. through a tunnel).
    """
    database = open_database(settings, ui.redact, url=url, say=ui.info)
    engine = engine_for(settings, host, database, compose)
    store = BackupStore(settings, host)
    facts = engine.facts()
    store.prepare()
    files.make_private(host, store.directory)
    check_space(settings, host, store.directory, facts.size)

    created = datetime.now(UTC)
    backup_id = store.new_id(created, release)
    partial = store.partial_path(backup_id, engine.suffix)
    archive = backup_id + engine.suffix
    journal.append("db.backup", backup=backup_id, database=database.shown, result="started")
    ui.info(f"backing up {database.shown} ({facts.size / MB:.1f} MB) as {backup_id}")
    try:
        dump_s, verify_s = _dump(engine, host, partial, verify=verify, ui=ui)
        size, digest = files.measure(
            host, partial, is_directory=engine.is_directory, timeout=settings.database.dump_timeout
        )
        files.move(host, partial, store.path(archive))
        manifest = Manifest(
            id=backup_id,
            env=settings.name,
            engine=database.engine,
            format=engine.format,
            archive=archive,
            database=facts.database,
            server_version=facts.server_version,
            alembic_revision=facts.revision,
            size=size,
            sha256=digest,
            created_at=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            duration_s=round(dump_s, 3),
            verified=verify,
            verify_s=None if verify_s is None else round(verify_s, 3),
            release=release,
        )
        store.save(manifest)
    except BaseException as exc:
        _discard(host, ui, partial, store.path(archive))
        journal.append("db.backup", backup=backup_id, result="failed", error=str(exc))
        ui.error(f"backup {backup_id} failed; nothing was kept under its name")
        raise
    journal.append("db.backup", backup=backup_id, result="ok", sha256=digest, size=size)
    ui.success(
        f"backup {backup_id}: {size / MB:.1f} MB in {dump_s:.1f} s"
        + (f", verified in {verify_s:.1f} s" if verify_s is not None else ", NOT verified")
    )
    return manifest


def check_space(settings: EnvironmentSettings, host: Host, directory: str, db_size: int) -> None:
    """Refuse to start a dump that would not fit: database size x ratio + the configured margin."""
    conf = settings.database
    needed = int(db_size * conf.dump_size_ratio) + conf.min_free_mb * MB
    free = files.free_bytes(host, directory)
    if free < needed:
        raise DeployFailure(
            f"not enough free space for a backup in {host.name}:{directory}: "
            f"{free / MB:.1f} MB free, {needed / MB:.1f} MB needed "
            f"(database {db_size / MB:.1f} MB x {conf.dump_size_ratio} + {conf.min_free_mb} MB)",
            "free some space (`invoke db.prune`), or tune database.dump_size_ratio / min_free_mb",
        )


def _dump(
    engine: Engine, host: Host, partial: str, *, verify: bool, ui: Ui
) -> tuple[float, float | None]:
    started = time.monotonic()
    engine.dump(partial)
    files.make_private(host, partial)
    dump_s = time.monotonic() - started
    if not verify:
        return dump_s, None
    ui.info("verifying: reading the whole archive")
    started = time.monotonic()
    engine.verify(partial)
    return dump_s, time.monotonic() - started


def _discard(host: Host, ui: Ui, *paths: str) -> None:
    """Best effort: a cleanup failure is reported but must not hide the error that caused it."""
    for path in paths:
        try:
            host.remove(path)
        except Exception as exc:
            ui.error(f"could not remove {host.name}:{path} after the failure: {exc}")
