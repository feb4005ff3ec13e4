"""The migrations' offline SQL of a compose environment is rendered in the app's image, never
by the controller's interpreter: the lint of a deploy (after its build, before its backup),
``invoke db.lint`` and ``invoke db.migrate --sql``.

The proof is a revision 0004 whose ``upgrade()`` imports ``imageonly``, a module that only the
image has (its Dockerfile writes it into the image's virtualenv): rendered anywhere else, it
fails with ModuleNotFoundError. The commits carrying it are side commits of v1 that main
never gets (tests/support/composedeploy.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.composedeploy import ENV, Stack, no_lock
from tests.support.deployproject import compose_env, deploy_toml, health, migration

pytestmark = pytest.mark.integration

COLUMN = "column_named_in_the_image"
# After the virtualenv and before the code: the layers above stay cached.
IMAGE_ONLY = (
    "WORKDIR /app\n"
    "RUN python3 -c \"import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()['purelib'],"
    f" 'imageonly.py').write_text('COLUMN = \\\"{COLUMN}\\\"\\\\n')\"\n"
)
DROPS_A_COLUMN_NAMED_IN_THE_IMAGE = migration(
    "0004",
    'from imageonly import COLUMN\nop.drop_column("users", COLUMN)',
    'from imageonly import COLUMN\nop.add_column("users", sa.Column(COLUMN, sa.Text))',
)
DROP_STATEMENT = f"ALTER TABLE users DROP COLUMN {COLUMN}"


def image_only_files(stack: Stack) -> dict[str, str]:
    dockerfile = stack.project.file("example/Dockerfile").read_text()
    assert "WORKDIR /app\n" in dockerfile
    return {
        "example/Dockerfile": dockerfile.replace("WORKDIR /app\n", IMAGE_ONLY, 1),
        "example/migrations/versions/0004_image_only.py": DROPS_A_COLUMN_NAMED_IN_THE_IMAGE,
    }


@contextmanager
def checked_out(stack: Stack, sha: str) -> Iterator[None]:
    stack.project.git("checkout", "-q", "--detach", sha)
    try:
        yield
    finally:
        stack.project.git("checkout", "-q", "main")


def test_lint_and_sql_of_the_checkout_are_rendered_in_its_image(stack: Stack) -> None:
    project = stack.project
    sha = stack.side_commit("v1", "0004 drops a column the image names", image_only_files(stack))
    images, database = stack.images(), stack.database()

    with checked_out(stack, sha):
        sql = project.invoke("db.migrate", "--env", ENV, "--sql", "--since", "0003", timeout=900)
        lint = project.invoke("db.lint", "--env", ENV, timeout=900)

    assert sql.returncode == 0, sql.output
    assert DROP_STATEMENT in sql.stdout
    assert "Running upgrade 0003 -> 0004" in sql.stdout
    assert lint.returncode == 0, lint.output
    assert f"warning: revision 0004: drop-column: loses the column's data: {DROP_STATEMENT}" in (
        lint.stderr
    )
    assert "Traceback" not in sql.output + lint.output
    # The images built to render in are gone (the layers stay in the build cache); the
    # database was never touched.
    assert stack.images() == images
    assert stack.database() == database
    no_lock(stack)


def test_a_refused_lint_takes_no_backup_and_the_release_before_serves_on(stack: Stack) -> None:
    project = stack.project
    v1 = stack.running("v1")
    production = {**compose_env(stack.compose_project, stack.image), "production": True}
    files = {
        **image_only_files(stack),
        "config/deploy.toml": deploy_toml({ENV: production}),
    }
    sha = stack.side_commit("v1", "production, and 0004 drops a column the image names", files)
    env_file = project.file(f"config/{ENV}.env")
    values = env_file.read_text()
    backups = sorted(p.name for p in project.file(f"backups/{ENV}").iterdir())
    database, containers, count = stack.database(), stack.containers(), len(project.journal(ENV))

    assert "ENVIRONMENT=staging\n" in values
    env_file.write_text(values.replace("ENVIRONMENT=staging\n", "ENVIRONMENT=production\n"))
    try:
        with checked_out(stack, sha):
            plan = project.deploy(ENV, "--dry-run")
            run = project.deploy(ENV)
    finally:
        env_file.write_text(values)

    assert plan.returncode == 0, plan.output
    assert "lint pending revision(s) 0004 on the SQL" in plan.output
    assert run.returncode == 2, run.output
    assert "failed at step 'lint migrations'" in run.stderr
    assert "unsafe migration step(s) for production environment" in run.stderr
    assert f"error: revision 0004: drop-column: loses the column's data: {DROP_STATEMENT}" in (
        run.stderr
    )
    assert "Traceback" not in run.output
    events = project.journal(ENV)[count:]
    assert [e["step"] for e in events if e["kind"] == "step.start"] == [
        "validate env", "lock", "snapshot", "build", "lint migrations",
    ]  # fmt: skip
    assert not any(e["kind"].startswith("db.") for e in events)
    assert sorted(p.name for p in project.file(f"backups/{ENV}").iterdir()) == backups
    assert stack.database() == database and database[0] == "0003"
    assert stack.containers() == containers
    assert health(stack.port)[1]["release"] == v1
    no_lock(stack)
