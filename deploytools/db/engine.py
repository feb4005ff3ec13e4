"""What backup, verification and restore need from a database engine (PostgreSQL or SQLite)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from deploytools.config import EnvironmentSettings
from deploytools.db.database import Database
from deploytools.db.facts import Facts
from deploytools.hosts.base import Host


class Engine(Protocol):
    @property
    def format(self) -> str:
        """The manifest's format: custom | directory | sqlite."""
        ...

    suffix: str  # archive name suffix
    is_directory: bool

    @property
    def method(self) -> str:
        """How a backup is taken, in the words of a dry run's plan."""
        ...

    def facts(self) -> Facts:
        """Connect and describe; an unreachable database fails here, before anything is written."""
        ...

    def revision(self) -> str | None:
        """The alembic revision(s) the database is at (``alembic_version``), None: never
        migrated. Read by deploytools itself: what a migration says is not taken for it."""
        ...

    def dump(self, target: str) -> None:
        """Write a complete archive at ``target`` (which does not exist yet) or raise."""
        ...

    def verify(self, archive: str) -> None:
        """Read the whole archive; raise ``DeployFailure`` if it is not fully readable."""
        ...

    def restore(self, archive: str) -> None:
        """Replace the database's contents with the archive's, all or nothing."""
        ...


def engine_for(
    settings: EnvironmentSettings,
    host: Host,
    database: Database,
    compose: Sequence[str] | None = None,
) -> Engine:
    """``compose``: the ``docker compose ...`` argv prefix for ``dump_via_service`` (default:
    the environment's compose project, as the compose runtime names it)."""
    if database.engine == "sqlite":
        from deploytools.db.sqlite import SqliteEngine

        return SqliteEngine(settings, database)
    from deploytools.db.postgres import PostgresEngine

    if settings.database.dump_via_service and compose is None:
        from deploytools.targets import compose_project

        compose = compose_project(settings, host).base()
    return PostgresEngine(settings, host, database, compose or ())
