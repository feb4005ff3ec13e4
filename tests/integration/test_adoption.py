"""A project shaped like the trial's adopts deploytools, on real PostgreSQL and Redis.

The project (``tests/support/adoptproject.py``) has its code and alembic at the root, an async
``DATABASE_URL`` (``postgresql+asyncpg://…?ssl=disable``) that its ``env.py`` reads from the
environment, a Celery worker, and its own ``.venv`` with celery 5.3.6. deploytools runs from
this interpreter, beside the app. Through the CLI, as a user would: ``init``, a few hand-added
lines, the env file, a deploy, a second deploy with a migration, a rollback with a downgrade.
One story, one test: each assertion names the step it checks.

A migration that "succeeds" without moving the revision failing the deploy is
``test_migrate_in_release.py``'s last test.
"""

from __future__ import annotations

import difflib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.adoptproject import (
    ADD_COLUMN,
    CELERY,
    adopt_project,
    commit,
    freeze,
    git,
)
from tests.support.cli import Run, TempProject, bootstrap
from tests.support.deployproject import DEPLOY_TIMEOUT, health
from tests.support.postgres_server import PostgresServer, alembic_revision
from tests.support.procs import free_port
from tests.support.redis_server import RedisServer
from tests.support.secretforms import leaked

pytestmark = pytest.mark.integration

ENV = "prod"
WRITTEN = ["tasks.py", "config/deploy.toml", "config/prod.env.example", "config/.gitignore"]
MOST_EDITED_LINES = 15
# Every line added by hand to what init wrote ({python}: the app's .venv, found by deploytools).
EDITS = """
[environments.prod.services.web]
command = ["{python}", "-m", "shop.web"]
probe = { url = "http://127.0.0.1:{PORT}/health" }

[environments.prod.services.worker]
command = ["{python}", "-m", "celery", "-A", "shop.worker", "worker", "-c", "1"]

[environments.prod.celery]
app = "shop.worker"
"""


class Adoption:
    """The project, its servers' URLs and every CLI run, for the assertions on all of them."""

    def __init__(
        self, project: TempProject, database: str, password: str, redis: RedisServer
    ) -> None:
        self.project = project
        self.database = database  # psycopg's URL of the app's database
        self.password = password  # its role's
        self.redis = redis
        self.port = str(free_port())
        self.secret_key = secrets.token_urlsafe(24)
        self.runs: list[Run] = []

    @property
    def path(self) -> Path:
        return self.project.path

    def invoke(self, *args: str) -> Run:
        run = self.project.invoke(*args, timeout=DEPLOY_TIMEOUT)
        self.runs.append(run)
        return run

    def journal(self) -> list[dict[str, Any]]:
        text = self.project.file(f".deploytools/{ENV}/journal.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()]

    def last_tag(self) -> str:
        return str([r for r in self.journal() if r["kind"] == "release"][-1]["tag"])

    def releases(self) -> dict[str, Path]:
        root = self.project.file(f".deploytools/{ENV}/releases")
        return {p.name: p for p in sorted(root.iterdir())}

    def serves(self, step: str) -> str:
        code, body = health(self.port)
        assert code == 200, f"{step}: /health answered {code}"
        return str(body["release"])

    def revision(self) -> str | None:
        return alembic_revision(self.database)


@pytest.fixture(scope="module")
def adoption(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
) -> Iterator[Adoption]:
    """The project as cloned (committed, its .venv made), and a database owned by its role."""
    name = "adopt_shop"
    postgres_server.create_database(name)
    role, password = f"shop_{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    postgres_server.hand_over(name, role, password)
    project = adopt_project(tmp_path_factory.mktemp("adopt") / "shop")
    database = f"postgresql://{role}:{password}@127.0.0.1:{postgres_server.port}/{name}"
    site = Adoption(project, database, password, redis_server)
    try:
        yield site
    finally:
        project.invoke("stack.down", "--env", ENV, timeout=DEPLOY_TIMEOUT)


def ok(step: str, run: Run) -> Run:
    assert run.returncode == 0, f"{step} failed:\n{run.output}"
    return run


def release_files(code: Path) -> dict[str, os.stat_result]:
    """Every entry of a release, its shared-directory links not followed."""
    found = {}
    for here, dirs, files in os.walk(code):
        for name in [*dirs, *files]:
            path = Path(here) / name
            found[path.relative_to(code).as_posix()] = path.lstat()
    return found


def size(code: Path) -> int:
    return sum(s.st_size for s in release_files(code).values() if stat.S_ISREG(s.st_mode))


def edited_lines(before: dict[str, str], project: TempProject) -> int:
    """Lines added, removed or changed by hand in the files init wrote."""
    count = 0
    for name, text in before.items():
        after = project.file(name).read_text()
        diff = difflib.unified_diff(text.splitlines(), after.splitlines(), lineterm="", n=0)
        count += sum(1 for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---"))
    return count


def test_a_trial_shaped_project_adopts_deploytools(adoption: Adoption) -> None:
    site = adoption
    packages = freeze(site.path)
    assert f"celery=={CELERY}" in packages.splitlines()

    # init: tasks.py, config/deploy.toml and the env example, from the project.
    run = bootstrap(site.project)
    site.runs.append(run)
    ok("init", run)
    written = {name: site.project.file(name).read_text() for name in WRITTEN}
    assert "DATABASE_URL=postgresql+asyncpg://" in written["config/prod.env.example"], "init"

    # The hand-added lines, counted against what init wrote; committed with it.
    with site.project.file("config/deploy.toml").open("a") as toml:
        toml.write(EDITS)
    edits = edited_lines(written, site.project)
    assert 0 < edits <= MOST_EDITED_LINES, f"hand edits: {edits} lines"
    commit(site.path, "deploy with deploytools")
    assert git(site.path, "status", "--porcelain") == ""
    site.project.write_env(
        ENV,
        f"DATABASE_URL={site.database.replace('postgresql://', 'postgresql+asyncpg://', 1)}"
        "?ssl=disable\n"
        f"CELERY_BROKER_URL={site.redis.url(0)}\n"
        f"CELERY_RESULT_BACKEND={site.redis.url(1)}\n"
        f"SECRET_KEY={site.secret_key}\n"
        f"PORT={site.port}\n",
    )

    # The first deploy: the release serves, PostgreSQL is at a1.
    ok("first deploy", site.invoke("deploy", "--env", ENV))
    first = site.last_tag()
    assert site.serves("first deploy") == first
    assert site.revision() == "a1", "first deploy: PostgreSQL's revision"
    worker_is_the_apps(site, "first deploy")
    assert git(site.path, "status", "--porcelain") == "", "first deploy: its state shows in git"

    # A second commit with a migration: deployed, PostgreSQL at a2.
    site.project.file("alembic/versions/a2_item_names.py").write_text(ADD_COLUMN)
    commit(site.path, "items get a name")
    ok("second deploy", site.invoke("deploy", "--env", ENV))
    second = site.last_tag()
    assert second != first
    assert site.serves("second deploy") == second
    assert site.revision() == "a2", "second deploy: PostgreSQL's revision"
    worker_is_the_apps(site, "second deploy")

    # The releases: the commit's tracked files, nothing else; the second only by its migration.
    releases = site.releases()
    assert list(site.project.file(f"backups/{ENV}").glob("*.json")), "the deploys made backups"
    for tag, code in releases.items():
        names = release_files(code)
        strays = [n for n in names if n.endswith(".env") or n.startswith(("backups", ".venv"))]
        strays += [n for n in names if ".deploytools/" in f"{n}/" or "releases" in n]
        assert strays == [], f"release {tag} holds {strays}"
    sizes = {tag: size(code) for tag, code in releases.items()}
    assert sizes[second] - sizes[first] == len(ADD_COLUMN.encode()), f"release sizes: {sizes}"

    # The rollback to the first release: its code serves, PostgreSQL is back at a1.
    ok("rollback", site.invoke("rollback", "--env", ENV, "--tag", first))
    assert site.serves("rollback") == first
    assert site.revision() == "a1", "rollback: PostgreSQL's revision"
    worker_is_the_apps(site, "rollback")

    # After it all: the app's packages untouched, no secret said anywhere.
    assert freeze(site.path) == packages, "deploytools changed the app's installed packages"
    said = "".join(r.output for r in site.runs)
    said += "".join(p.read_text() for p in site.path.glob(f".deploytools/{ENV}/*.jsonl"))
    for name, secret in (("SECRET_KEY", site.secret_key), ("the database password", site.password)):
        assert leaked(secret, said) == [], f"{name} in the output or the journal"


def worker_is_the_apps(site: Adoption, step: str) -> None:
    """The worker that answered the step's Celery verification is the app's: it runs on the
    app's interpreter and says, over the broker, that it is celery 5.3.6."""
    from celery import Celery

    verified = [e for e in site.journal() if e["kind"] == "step.done" and "celery" in e][-1]
    record = json.loads(site.project.file(f".deploytools/{ENV}/run/worker.pid").read_text())
    argv = Path(f"/proc/{record['pid']}/cmdline").read_bytes().split(b"\0")
    assert argv[0].decode() == f"{site.path}/.venv/bin/python", f"{step}: worker runs {argv}"
    app = Celery(broker=site.redis.url(0), backend=site.redis.url(1))
    try:
        reports = app.control.inspect(timeout=5.0).report() or {}
    finally:
        app.close()
    assert sorted(reports) == verified["celery"]["workers"], f"{step}: {verified}, {reports}"
    for node, report in reports.items():
        assert f"celery:{CELERY} " in report["ok"], f"{step}: {node}: {report['ok'][:200]}"
