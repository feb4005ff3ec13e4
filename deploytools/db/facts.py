"""What the live database says about itself: the engines (postgres, sqlite) report it, the
backup records it; its own module so that they need not import ``engine``, which picks them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Facts:
    """What the live database says about itself before a dump."""

    database: str
    server_version: str
    size: int  # bytes on disk: the basis of the free-space check
    revision: str | None  # alembic revision, None when never migrated
