"""A backup's manifest: the JSON file beside its archive that says what it holds.

A backup exists when its manifest exists: the manifest is written last, after the archive is
complete, verified and renamed, so it is the commit point of a backup.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from deploytools.errors import OperatorError

BACKUP_ID = re.compile(r"^[a-z][a-z0-9_-]{0,31}-\d{8}T\d{6}Z(-[A-Za-z0-9._-]{1,80})?$")
UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# A deploy's release tag (``release-<env>-<stamp>-<sha>``, deploytools.release) up to its sha.
TAG_STAMP = re.compile(r"^release-.*?-\d{8}T\d{6}Z-")
MANIFEST_SUFFIX = ".json"


@dataclass(frozen=True)
class Manifest:
    id: str
    env: str
    engine: str  # postgresql | sqlite
    format: str  # custom | directory | sqlite
    archive: str  # file or directory name beside the manifest
    database: str
    server_version: str
    alembic_revision: str | None
    size: int  # bytes of the archive (all files of a directory archive)
    sha256: str
    created_at: str  # ISO 8601, UTC
    duration_s: float  # the dump alone
    verified: bool
    verify_s: float | None = None
    release: str | None = None

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        try:
            raw = json.loads(data)
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (ValueError, TypeError, AttributeError) as exc:
            raise OperatorError(
                f"backup manifest {where} is damaged ({exc})",
                "remove that backup (its manifest and archive) or restore the manifest from a copy",
            ) from None

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def new_id(env: str, when: datetime, release: str | None = None) -> str:
    """``<env>-<UTC yyyymmddThhmmssZ>[-<release>]``: sortable, and safe as a file name.

    A deploy's release tag adds only its commit: its environment and time are there already
    (the manifest keeps the whole tag). Ids made before, with the whole tag, stay valid.
    """
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = TAG_STAMP.sub("", release) if release else ""
    suffix = UNSAFE.sub("_", name).strip("._-")[:80]
    return f"{env}-{stamp}" + (f"-{suffix}" if suffix else "")


def check_id(backup_id: str) -> str:
    """Refuse anything that is not a backup id before it becomes part of a path."""
    if not BACKUP_ID.match(backup_id) or ".." in backup_id:
        raise OperatorError(
            f"{backup_id!r} is not a backup id (like prod-20250101T120000Z)",
            "list the backups with `invoke db.backups --env NAME`",
        )
    return backup_id
