"""A ``production = true`` environment runs the migration-safety lint before its backup.

Process runtime on real PostgreSQL and Redis (production's rules refuse SQLite and the
filesystem broker). Each test has its own project, database and running release, and stops
its stack at the end: none depends on another, and a failure in one leaves nothing behind.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.support.deployproject import DeployProject, health, migration, process_env
from tests.support.procs import free_port

pytestmark = pytest.mark.integration

ENV = "live"
NEW_REVISION = "example/migrations/versions/0004_test.py"
DROP_NOTE = migration(
    "0004",
    'op.drop_column("orders", "note")',
    'op.add_column("orders", sa.Column("note", sa.Text))',
)
REVIEWED = DROP_NOTE.replace(
    "branch_labels = None\n",
    'branch_labels = None\nreviewed = {"drop-column": "no release reads orders.note since v2"}\n',
)
CONCURRENT_INDEX = migration(
    "0004",
    "with op.get_context().autocommit_block():\n"
    '    op.create_index("ix_orders_note", "orders", ["note"], postgresql_concurrently=True)',
    "with op.get_context().autocommit_block():\n"
    '    op.drop_index("ix_orders_note", table_name="orders", postgresql_concurrently=True)',
)


@pytest.fixture
def project(
    tmp_path: Any, postgres_server: Any, redis_server: Any, request: pytest.FixtureRequest
) -> Iterator[DeployProject]:
    """The example deployed once to a production environment: a healthy release at 0003."""
    import redis

    for db in (14, 15):  # this module's Redis databases: no message of an earlier test left
        redis.Redis.from_url(redis_server.url(db), socket_timeout=5).flushdb()
    proj = DeployProject(tmp_path / "app")
    env = process_env(probe_timeout=30)
    env.update(env_file=f"config/{ENV}.env", production=True)
    proj.configure({ENV: env})
    name = "lint_" + request.node.name.removeprefix("test_")[:40]
    url = postgres_server.create_database(name)
    proj.init_env(
        ENV,
        {
            "ENVIRONMENT": "production",
            "PORT": str(free_port()),
            "DATABASE_URL": url,
            "POSTGRES_PASSWORD": urlsplit(url).password or "",
            "REDIS_URL": redis_server.url(15),
            "CELERY_BROKER_URL": redis_server.url(14),
            "CELERY_RESULT_BACKEND": redis_server.url(15),
            "OPENAI_API_KEY": "sk-test-" + secrets.token_urlsafe(24),
        },
    )
    try:
        first = proj.deploy(ENV)
        assert first.returncode == 0, first.output
        yield proj
    finally:
        proj.invoke("stack.down", "--env", ENV, timeout=120)


def running_tag(project: DeployProject) -> str:
    return str([r for r in project.releases(ENV) if r["result"] == "ok"][-1]["tag"])


def backups(project: DeployProject) -> list[str]:
    directory = project.file(f"backups/{ENV}")
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def served_release(project: DeployProject) -> Any:
    return health(project.env_values(ENV)["PORT"])[1].get("release")


def test_an_unreviewed_drop_column_stops_the_deploy_before_the_backup(
    project: DeployProject,
) -> None:
    tag, files, state = running_tag(project), backups(project), project.database(ENV)
    project.commit("drop orders.note", {NEW_REVISION: DROP_NOTE})
    count = len(project.journal(ENV))

    plan = project.deploy(ENV, "--dry-run")
    run = project.deploy(ENV)

    assert plan.returncode == 0, plan.output
    assert "lint pending revision(s) 0004 on the SQL" in plan.output
    assert "stops the deploy here" in plan.output
    assert run.returncode == 2, run.output
    assert "failed at step 'lint migrations'" in run.stderr
    assert "unsafe migration step(s) for production environment live" in run.stderr
    assert "error: revision 0004: drop-column: loses the column's data" in run.stderr
    assert "ALTER TABLE orders DROP COLUMN note" in run.stderr
    assert 'reviewed = {"drop-column": "why it is safe"}' in run.stderr
    assert "Traceback" not in run.output
    events = project.journal(ENV)[count:]
    assert [e["step"] for e in events if e["kind"] == "step.start"] == [
        "validate env",
        "lock",
        "snapshot",
        "build",  # the lint reads the SQL the new release renders
        "lint migrations",
    ]
    assert not any(e["kind"].startswith("db.") for e in events)
    assert backups(project) == files  # no backup taken
    assert project.database(ENV) == state and state[0] == "0003"
    assert not (project.state_dir(ENV) / "deploy.lock").exists()
    assert served_release(project) == tag


def test_a_reviewed_drop_column_deploys_with_a_warning(project: DeployProject) -> None:
    project.commit("drop orders.note, reviewed", {NEW_REVISION: REVIEWED})

    run = project.deploy(ENV)

    assert run.returncode == 0, run.output
    assert "warning: revision 0004: drop-column" in run.stderr
    assert "[reviewed: no release reads orders.note since v2]" in run.stderr
    revision, _ = project.database(ENV)
    assert revision == "0004"
    assert "note" not in _columns(project, "orders")
    assert served_release(project) == running_tag(project)


def test_a_concurrent_index_in_an_autocommit_block_deploys_and_is_valid(
    project: DeployProject,
) -> None:
    project.commit("index orders.note without blocking writes", {NEW_REVISION: CONCURRENT_INDEX})

    run = project.deploy(ENV)

    assert run.returncode == 0, run.output
    assert "drop-column" not in run.stderr and "create-index" not in run.stderr
    assert project.database(ENV)[0] == "0004"
    with psycopg.connect(project.env_values(ENV)["DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = 'ix_orders_note'"
        ).fetchall()
    assert rows == [(True,)]


def _columns(project: DeployProject, table: str) -> list[str]:
    with psycopg.connect(project.env_values(ENV)["DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
        ).fetchall()
    return [str(r[0]) for r in rows]
