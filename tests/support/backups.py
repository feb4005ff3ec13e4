"""Backup manifests for retention tests: numbered, so that a test reads as which ones are kept."""

from __future__ import annotations

from deploytools.config import EnvironmentSettings
from deploytools.db.manifest import Manifest
from deploytools.hosts.base import Host
from deploytools.site.journal import Journal
from deploytools.targets import state_dir


def numbered_backup(env: str, n: int, *, verified: bool = True) -> Manifest:
    """Backup number ``n`` (0 to 1439) of ``env``, taken ``n`` minutes after midnight: ids and
    times sort as the numbers do."""
    hour, minute = divmod(n, 60)
    stamp = f"20250101T{hour:02d}{minute:02d}00Z"
    return Manifest(
        id=f"{env}-{stamp}",
        env=env,
        engine="postgresql",
        format="custom",
        archive=f"{env}-{stamp}.dump",
        database="app",
        server_version="15",
        alembic_revision="0003",
        size=1,
        sha256="0" * 64,
        created_at=f"2025-01-01T{hour:02d}:{minute:02d}:00Z",
        duration_s=1.0,
        verified=verified,
    )


def number_of(backup_id: str) -> int:
    """``n`` of a ``numbered_backup`` id."""
    stamp = backup_id.rsplit("T", 1)[1]
    return int(stamp[:2]) * 60 + int(stamp[2:4])


def journal_for(settings: EnvironmentSettings, host: Host) -> Journal:
    """The environment's journal on ``host``, as a run's Site gives the db functions."""
    return Journal(host, state_dir(settings, host))
