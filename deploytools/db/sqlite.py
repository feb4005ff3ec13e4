"""SQLite (the ``local`` environment's embedded database) through Python's ``sqlite3``.

The online backup API copies a consistent snapshot while the app keeps running; verification
is ``PRAGMA integrity_check`` on the copy, which reads every page. The database file is on
this machine by nature, so environments with remote hosts cannot use SQLite.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from deploytools.config import EnvironmentSettings
from deploytools.db.database import Database
from deploytools.db.facts import Facts
from deploytools.errors import DeployFailure, OperatorError


class SqliteEngine:
    format = "sqlite"
    suffix = ".sqlite3"
    is_directory = False
    method = "SQLite online backup"

    def __init__(self, settings: EnvironmentSettings, database: Database) -> None:
        assert database.path is not None
        if settings.remote:
            raise OperatorError(
                f"environment {settings.name!r} has remote hosts but a SQLite database",
                "SQLite is for the local environment; use PostgreSQL on hosts",
            )
        self.path = database.path

    def facts(self) -> Facts:
        if not self.path.is_file():
            raise OperatorError(
                f"SQLite database {self.path} does not exist",
                "run the app or `invoke db.migrate` once to create it",
            )
        with closing(_connect(self.path, read_only=True)) as db:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            revision = _revision(db)
        return Facts(
            self.path.name, f"SQLite {sqlite3.sqlite_version}", pages * page_size, revision
        )

    def revision(self) -> str | None:
        if not self.path.is_file():
            return None  # not made yet: the first migration makes it
        with closing(_connect(self.path, read_only=True)) as db:
            return _revision(db)

    def dump(self, target: str) -> None:
        _copy(self.path, Path(target), "backup")

    def verify(self, archive: str) -> None:
        try:
            with closing(_connect(Path(archive), read_only=True)) as db:
                answer = [row[0] for row in db.execute("PRAGMA integrity_check").fetchall()]
        except sqlite3.DatabaseError as exc:
            raise DeployFailure(f"SQLite archive {archive} is not readable: {exc}") from None
        if answer != ["ok"]:
            raise DeployFailure(f"SQLite archive {archive} failed integrity_check: {answer[:5]}")

    def restore(self, archive: str) -> None:
        _copy(Path(archive), self.path, "restore")


def _revision(db: sqlite3.Connection) -> str | None:
    has_alembic = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    ).fetchone()
    rows = db.execute("SELECT version_num FROM alembic_version").fetchall() if has_alembic else []
    return ",".join(sorted(r[0] for r in rows)) or None


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    return sqlite3.connect(path)


def _copy(source: Path, target: Path, what: str) -> None:
    """sqlite3's online backup: ``target`` is replaced in one transaction."""
    try:
        with closing(_connect(source, read_only=True)) as src, closing(_connect(target)) as dst:
            src.backup(dst)
    except sqlite3.Error as exc:
        raise DeployFailure(f"SQLite {what} from {source} to {target} failed: {exc}") from None
