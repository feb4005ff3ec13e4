"""Database URLs as apps write them, through the real invoke CLI on a real PostgreSQL.

SQLAlchemy's ``postgresql+asyncpg://…?ssl=disable`` and ``postgresql+psycopg://…?sslmode=disable``
(and the options of the app's driver) must work for db.migrate, db.current, db.backup and its
verification; a URL that no client takes exits 2 naming DATABASE_URL and the fix, before
anything is done, with no traceback. The role's password holds ``@ : / % $`` and no form of it
is ever printed. Every test has a database and a role of its own.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from tests.support.cli import Run, TempProject
from tests.support.secretforms import leaked

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Owner:
    """A database and the role that owns it, reached as an app would."""

    host: str
    port: int
    dbname: str
    role: str
    password: str

    def url(self, scheme: str, query: str) -> str:
        secret = quote(self.password, safe="")
        return f"{scheme}://{self.role}:{secret}@{self.host}:{self.port}/{self.dbname}?{query}"

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url("postgresql", "sslmode=disable"), autocommit=True) as conn:
            cursor = conn.execute(statement)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []


@pytest.fixture
def owner(postgres_server: Any, request: pytest.FixtureRequest) -> Iterator[Owner]:
    name = "u_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:40]
    postgres_server.create_database(name)
    role = f"app_{secrets.token_hex(4)}"
    password = f"p@ss:w/rd%${secrets.token_hex(4)}"
    postgres_server.hand_over(name, role, password)
    yield Owner(postgres_server.host, postgres_server.port, name, role, password)
    with psycopg.connect(postgres_server.url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


class Project(TempProject):
    def __init__(self, path: Path, url: str, password: str) -> None:
        super().__init__(path)  # copies config/ and example/migrations
        self.password = password
        self.write_env("local", f"DATABASE_URL={url}\n")

    def run(self, *args: str) -> Run:
        result = self.invoke(*args, "--env", "local")
        assert leaked(self.password, result.output) == [], result.output
        assert "Traceback" not in result.output, result.output
        return result


def revision(owner: Owner, table: str = "alembic_version") -> list[tuple[Any, ...]]:
    if owner.query(f"SELECT to_regclass('{table}')") == [(None,)]:
        return []
    return owner.query(f"SELECT version_num FROM {table}")


@pytest.mark.parametrize(
    ("scheme", "query"),
    [
        ("postgresql+asyncpg", "ssl=disable"),
        ("postgresql+psycopg", "sslmode=disable&application_name=deploytools-test"),
    ],
)
def test_migrate_current_backup_and_verify_take_the_apps_url(
    tmp_path: Path, owner: Owner, scheme: str, query: str
) -> None:
    project = Project(tmp_path, owner.url(scheme, query), owner.password)

    migrated = project.run("db.migrate")
    assert migrated.returncode == 0, migrated.output
    assert revision(owner) == [("0003",)]

    current = project.run("db.current", "--json")
    assert current.returncode == 0, current.output
    assert json.loads(current.stdout) == {"revision": "0003", "pending": []}

    made = project.run("db.backup", "--json")
    assert made.returncode == 0, made.output
    manifest = json.loads(made.stdout)
    assert (manifest["verified"], manifest["alembic_revision"]) == (True, "0003")
    checked = project.run("db.verify", "--backup", manifest["id"])
    assert checked.returncode == 0, checked.output
    assert "checksum matches, archive fully readable" in checked.stderr


def test_the_apps_driver_options_are_left_out_with_a_note_and_options_reach_the_server(
    tmp_path: Path, owner: Owner
) -> None:
    """``options`` travels in PGOPTIONS (beside deploytools' lock_timeout) and in psycopg's own
    connection: alembic's table lands in the schema it names, and psql finds it there."""
    owner.query("CREATE SCHEMA app")
    query = (
        "ssl=disable&prepared_statement_cache_size=0&command_timeout=30"
        "&options=-c%20search_path%3Dapp"
    )
    project = Project(tmp_path, owner.url("postgresql+asyncpg", query), owner.password)

    migrated = project.run("db.migrate")
    assert migrated.returncode == 0, migrated.output
    note = "DATABASE_URL: left out of deploytools' connections"
    assert note in migrated.stderr
    assert "command_timeout, prepared_statement_cache_size, which tune" in migrated.stderr
    assert revision(owner, "app.alembic_version") == [("0003",)]
    assert revision(owner, "public.alembic_version") == []

    made = project.run("db.backup", "--json")
    assert made.returncode == 0, made.output
    assert json.loads(made.stdout)["alembic_revision"] == "0003"  # psql read app's table
    assert note in made.stderr


@pytest.mark.parametrize(
    ("query", "problem", "fix"),
    [
        (
            "ssl=true",
            "DATABASE_URL has ssl= set to something that is not an SSL mode",
            "set DATABASE_URL to a URL with ssl=require (encrypted)",
        ),
        (
            "ssl=disable&sslmod=require",
            "DATABASE_URL has the option 'sslmod', which neither libpq",
            "set DATABASE_URL to a URL without sslmod, or with it spelt as libpq",
        ),
    ],
)
def test_a_url_no_client_takes_exits_2_naming_the_key_and_changes_nothing(
    tmp_path: Path, owner: Owner, query: str, problem: str, fix: str
) -> None:
    project = Project(tmp_path, owner.url("postgresql+asyncpg", query), owner.password)
    for args in (("db.current",), ("db.backup",), ("db.migrate",)):  # one at a time: a lock
        result = project.run(*args)
        assert result.returncode == 2, (args, result.output)
        assert problem in result.stderr and fix in result.stderr, (args, result.stderr)
        assert "config/local.env" in result.stderr, (args, result.stderr)
    assert revision(owner) == []
    assert not (tmp_path / "backups").exists()
