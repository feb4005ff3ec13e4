"""Migrations run where the app runs, and the database's revision is checked afterwards.

A project laid out as real ones are (``tests/support/rootproject.py``: ``alembic/env.py`` reads
``DATABASE_URL`` from the environment with a SQLite default and never looks at
``config.attributes``) is migrated on real PostgreSQL by ``db.migrate``, ``db.downgrade`` and a
process deploy; PostgreSQL's own ``alembic_version`` is read with psycopg after each. An env.py
that ignores the URL (it always migrates a SQLite file) makes the deploy fail, PostgreSQL
untouched.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Run, TempProject
from tests.support.postgres_server import alembic_revision as revision
from tests.support.rootproject import ENV, root_project

pytestmark = pytest.mark.integration

TOKEN = "SHOP_API_TOKEN=tok_Zq8vN3rLk5wT1yXb7mP0sJ4h\n"
# A service that stays up without a probe: healthy once it has run for min_healthy.
SERVICE = """command = ["{python}", "-c", "import time; time.sleep(600)"]
probe = { min_healthy = 0.5 }
"""
IGNORES_THE_URL = """\
from alembic import context
from sqlalchemy import create_engine

with create_engine("sqlite:///always.db").connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""


@pytest.fixture
def database(postgres_server: Any, request: pytest.FixtureRequest) -> str:
    name = "m_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    return str(postgres_server.create_database(name))


def shop(tmp_path: Path, url: str, *, git: bool = False) -> TempProject:
    project = root_project(tmp_path / "shop")
    toml = project.file("config/deploy.toml")
    toml.write_text(toml.read_text().replace('command = ["{python}", "-m", "shop"]\n', SERVICE))
    # The driver the interpreter has (psycopg 3), as the app names it in its URL.
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    project.write_env(ENV, TOKEN + f"DATABASE_URL={url}\n")
    if git:
        project.file(".gitignore").write_text(
            ".deploytools/\nconfig/*.env\n!config/*.env.example\nbackups/\n__pycache__/\n*.db\n"
            "var/\n"
        )
        for argv in (
            ["init", "-q", "-b", "main"],
            ["config", "user.email", "operator@example.invalid"],
            ["config", "user.name", "Operator"],
            ["config", "commit.gpgsign", "false"],
            ["add", "-A"],
            ["commit", "-q", "-m", "shop"],
        ):
            subprocess.run(["git", *argv], cwd=project.path, check=True, capture_output=True)
    return project


def ok(run: Run) -> Run:
    assert run.returncode == 0, run.output
    return run


def test_db_migrate_and_downgrade_move_postgres_revision(tmp_path: Path, database: str) -> None:
    project = shop(tmp_path, database)

    ok(project.invoke("db.migrate", "--env", ENV))
    assert revision(database) == "a1"
    assert ok(project.invoke("db.current", "--env", ENV)).stdout.strip() == "a1"
    assert not project.file("shop.db").exists(), "env.py's SQLite default was not used"

    ok(project.invoke("db.downgrade", "--env", ENV, "--to", "base", "--yes"))
    assert revision(database) is None


def test_a_deploy_migrates_postgres_in_the_release(tmp_path: Path, database: str) -> None:
    project = shop(tmp_path, database, git=True)

    run = ok(project.invoke("deploy", "--env", ENV, timeout=180))

    assert revision(database) == "a1", run.output
    assert not list(project.path.rglob("shop.db")), "env.py's SQLite default was not used"
    ok(project.invoke("stack.down", "--env", ENV))


def test_a_migration_that_moves_no_revision_fails_the_deploy(tmp_path: Path, database: str) -> None:
    project = shop(tmp_path, database, git=True)
    project.file("alembic/env.py").write_text(IGNORES_THE_URL)
    subprocess.run(["git", "commit", "-qam", "sqlite"], cwd=project.path, check=True)

    run = project.invoke("deploy", "--env", ENV, timeout=180)

    assert run.returncode != 0, run.output
    assert "the migration reported success but DATABASE_URL's database is still at base" in (
        run.stderr
    ), run.stderr
    assert "DATABASE_URL in the environment" in run.stderr
    assert "✓ migrate" not in run.stderr
    assert revision(database) is None  # PostgreSQL untouched
