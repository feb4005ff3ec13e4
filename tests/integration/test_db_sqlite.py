"""SQLite, the local environment's database: the same migrations, backups and restore, no server."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from deploytools import db
from deploytools.db.database import open_database
from deploytools.db.engine import engine_for
from deploytools.errors import DeployFailure, OperatorError
from deploytools.hosts.local import LocalHost
from deploytools.runtime import migrations
from tests.support.backups import journal_for
from tests.support.dbenv import CapturedUi, example_app, make_settings


def rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(query).fetchall()


def write(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture
def app_db(tmp_path: Path) -> tuple[Any, Path]:
    """A SQLite file relative to the app dir, as in config/local.env.example."""
    app = example_app(tmp_path)
    settings = make_settings(tmp_path, "sqlite:///var/app.sqlite3", app_dir=app)
    return settings, app / "var" / "app.sqlite3"


def test_migrations_run_on_sqlite_and_the_data_migration_round_trips(app_db: Any) -> None:
    settings, path = app_db
    ui = CapturedUi()
    db.upgrade(settings, ui, "0002", at=migrations.where(settings))
    write(path, "INSERT INTO users (name, email) VALUES ('Ada Lovelace', 'a@x'), ('Cher', 'c@x')")

    db.upgrade(settings, ui, at=migrations.where(settings))
    assert rows(path, "SELECT first_name, last_name FROM users") == [
        ("Ada", "Lovelace"),
        ("Cher", ""),
    ]
    assert db.current_revision(settings) == "0003"

    db.downgrade(settings, ui, "0002", at=migrations.where(settings))
    assert rows(path, "SELECT name FROM users") == [("Ada Lovelace",), ("Cher",)]


def test_backup_is_verified_and_restore_gives_back_the_rows(app_db: Any) -> None:
    settings, path = app_db
    host, ui = LocalHost(), CapturedUi()
    db.upgrade(settings, ui, at=migrations.where(settings))
    write(path, "INSERT INTO users (first_name, last_name, email) VALUES ('Zoë', 'Ü', 'z@x')")
    before = rows(path, "SELECT * FROM users")

    manifest = db.backup(settings, host, ui, journal_for(settings, host), release="v1")

    assert (manifest.engine, manifest.format, manifest.verified) == ("sqlite", "sqlite", True)
    assert manifest.alembic_revision == "0003" and manifest.database == "app.sqlite3"
    archive = settings.path("backups") / "test" / manifest.archive
    assert archive.stat().st_mode & 0o777 == 0o600
    write(path, "DELETE FROM users")

    db.restore(settings, host, ui, journal_for(settings, host), manifest.id)

    assert rows(path, "SELECT * FROM users") == before


def test_integrity_check_rejects_a_truncated_archive(app_db: Any, tmp_path: Path) -> None:
    settings, path = app_db
    db.upgrade(settings, CapturedUi(), at=migrations.where(settings))
    write(
        path,
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 2000) "
        "INSERT INTO users (first_name, last_name, email) "
        "SELECT 'x', 'y', hex(randomblob(64)) FROM c",
    )
    manifest = db.backup(settings, LocalHost(), CapturedUi(), journal_for(settings, LocalHost()))
    archive = settings.path("backups") / "test" / manifest.archive
    cut = tmp_path / "cut.sqlite3"
    cut.write_bytes(archive.read_bytes()[: manifest.size // 2])

    with pytest.raises(DeployFailure, match="SQLite archive"):
        engine_for(settings, LocalHost(), open_database(settings)).verify(str(cut))


def test_a_missing_file_or_an_in_memory_url_is_refused(app_db: Any) -> None:
    settings, _ = app_db
    with pytest.raises(OperatorError, match="does not exist"):
        db.backup(settings, LocalHost(), CapturedUi(), journal_for(settings, LocalHost()))
    memory = make_settings(settings.root, "sqlite://")
    with pytest.raises(OperatorError, match="names no SQLite file"):
        db.backup(memory, LocalHost(), CapturedUi(), journal_for(memory, LocalHost()))
