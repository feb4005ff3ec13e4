"""The db.* tasks through the real invoke CLI, on a real PostgreSQL: exit codes, output, and the
database password never printed, whatever the path taken.

One project and one database for the module, to save the start-ups; each test brings the
database to its own starting point (``migrated``), so that none depends on another's run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.cli import Run, TempProject
from tests.support.procs import free_port

pytestmark = pytest.mark.integration

DROP_TABLE = '''"""Drop the orders table."""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("orders")


def downgrade() -> None:
    raise NotImplementedError
'''


class Project(TempProject):
    def __init__(self, path: Path, url: str) -> None:
        super().__init__(path)  # copies config/ and example/migrations
        self.url = url
        self.password = url.split(":")[2].split("@")[0]
        self.write_env("local", f"DATABASE_URL={url}\n")

    def run(self, *args: str) -> Run:
        result = self.invoke(*args)
        assert self.password not in result.output
        return result


@pytest.fixture(scope="module")
def project(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    url = postgres_server.create_database("cli_db_tasks")
    yield Project(tmp_path_factory.mktemp("db-cli"), url)


def migrated(project: Project) -> None:
    """The database at head (0003), whatever ran before: a no-op when it already is."""
    assert project.run("db.migrate", "--env", "local").returncode == 0


def test_migrate_then_current(project: Project) -> None:
    assert project.run("db.migrate", "--env", "local").returncode == 0
    current = project.run("db.current", "--env", "local", "--json")
    assert current.returncode == 0
    assert json.loads(current.stdout) == {"revision": "0003", "pending": []}


def test_backup_list_and_restore_with_confirmation(project: Project) -> None:
    migrated(project)
    listed_before = json.loads(project.run("db.backups", "--env", "local", "--json").stdout)
    with psycopg.connect(project.url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (first_name, last_name, email) VALUES ('A', 'B', 'a@b')")
    made = project.run("db.backup", "--env", "local", "--json")
    assert made.returncode == 0, made.output
    backup_id = json.loads(made.stdout)["id"]
    listed = json.loads(project.run("db.backups", "--env", "local", "--json").stdout)
    known = [b["id"] for b in listed_before["backups"]]
    assert [b["id"] for b in listed["backups"] if b["id"] not in known] == [backup_id]
    assert next(b for b in listed["backups"] if b["id"] == backup_id)["verified"] is True
    with psycopg.connect(project.url, autocommit=True) as conn:
        conn.execute("DELETE FROM users")

    refused = project.run("db.restore", "--env", "local", "--backup", backup_id)
    assert refused.returncode == 2 and "pass --yes" in refused.stderr

    restored = project.run("db.restore", "--env", "local", "--backup", backup_id, "--yes")
    assert restored.returncode == 0, restored.output
    with psycopg.connect(project.url, autocommit=True) as conn:
        assert conn.execute("SELECT email FROM users").fetchall() == [("a@b",)]


BAD_INPUT = [
    (("db.restore", "--backup", "local-20000101T000000Z", "--yes"), "no backup"),
    (("db.restore", "--backup", "../etc/passwd", "--yes"), "is not a backup id"),
    (("db.restore", "--yes"), "--backup ID is required"),
    (("db.downgrade", "--to", "nope", "--yes"), "unknown revision 'nope'"),
    (("db.migrate", "--to", "nope"), "unknown revision 'nope'"),
]


def test_bad_ids_and_revisions_exit_2_with_a_clear_message(project: Project) -> None:
    migrated(project)
    with ThreadPoolExecutor(len(BAD_INPUT)) as pool:  # one interpreter start-up, not five
        results = list(pool.map(lambda case: project.run(*case[0], "--env", "local"), BAD_INPUT))
    for (args, message), result in zip(BAD_INPUT, results, strict=True):
        assert (result.returncode, message in result.stderr) == (2, True), (args, result.output)
    assert project.run("db.current", "--env", "local").stdout.strip() == "0003"


def test_sql_prints_the_migration_sql_only(project: Project) -> None:
    result = project.run("db.migrate", "--env", "local", "--sql", "--since", "0001")
    assert result.returncode == 0
    assert "CREATE TABLE orders" in result.stdout and "DROP COLUMN name" in result.stdout
    assert "CREATE TABLE users" not in result.stdout


def test_lint_is_an_error_for_production_only(project: Project) -> None:
    clean = project.run("db.lint", "--env", "prod")
    assert clean.returncode == 0 and "reviewed" in clean.stderr

    (project.path / "example" / "migrations" / "versions" / "0004_drop.py").write_text(DROP_TABLE)
    try:
        prod = project.run("db.lint", "--env", "prod")
        local = project.run("db.lint", "--env", "local")
    finally:
        (project.path / "example" / "migrations" / "versions" / "0004_drop.py").unlink()
    assert prod.returncode == 1 and "revision 0004: drop-table" in prod.stderr
    assert local.returncode == 0 and "revision 0004: drop-table" in local.stderr


def test_an_unreachable_database_fails_without_printing_its_password(project: Project) -> None:
    where = project.path.parent / "unreachable"
    where.mkdir()
    bad = Project(where, f"postgresql://app:Pw-unreachable-42@127.0.0.1:{free_port()}/app")
    for args in (("db.backup",), ("db.migrate",), ("db.current",)):
        result = bad.run(*args, "--env", "local")
        assert result.returncode == 1
        assert "postgresql://app@127.0.0.1" in result.stderr
