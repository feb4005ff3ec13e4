"""Check a stored backup: its bytes against its manifest, then a full read of the archive."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from deploytools.config import EnvironmentSettings
from deploytools.db import files
from deploytools.db.database import open_database
from deploytools.db.engine import engine_for
from deploytools.db.manifest import Manifest
from deploytools.db.store import BackupStore
from deploytools.errors import DeployFailure
from deploytools.hosts.base import Host
from deploytools.ui import Ui


def check_checksum(settings: EnvironmentSettings, store: BackupStore, manifest: Manifest) -> None:
    """Refuse an archive whose size or SHA-256 differs from its manifest (changed or damaged)."""
    size, digest = files.measure(
        store.host,
        store.path(manifest.archive),
        is_directory=manifest.format == "directory",
        timeout=settings.database.dump_timeout,
    )
    if (size, digest) != (manifest.size, manifest.sha256):
        raise DeployFailure(
            f"backup {manifest.id} does not match its manifest: "
            f"sha256 {digest[:16]}... ({size} bytes), manifest says "
            f"{manifest.sha256[:16]}... ({manifest.size} bytes); it was changed or damaged",
            "do not use it: pick another backup (`invoke db.backups`)",
        )


def verify_backup(
    settings: EnvironmentSettings,
    host: Host,
    ui: Ui,
    backup_id: str,
    *,
    compose: Sequence[str] | None = None,
) -> Manifest:
    """Checksum, then read the whole archive; marks a backup taken unverified as verified."""
    store = BackupStore(settings, host)
    manifest = store.find(backup_id)
    check_checksum(settings, store, manifest)
    engine = engine_for(settings, host, open_database(settings, ui.redact), compose)
    started = time.monotonic()
    engine.verify(store.path(manifest.archive))
    elapsed = round(time.monotonic() - started, 3)
    if not manifest.verified:
        manifest = replace(manifest, verified=True, verify_s=elapsed)
        store.save(manifest)
    ui.success(f"backup {manifest.id}: checksum matches, archive fully readable ({elapsed:.1f} s)")
    return manifest
