"""What runs the migrations is checked before anything changes: a configured interpreter that
does not exist stops a deploy at ``validate env`` and ``db.migrate`` at once, exit 2."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import TempProject
from tests.support.docker_engine import DockerEngine
from tests.support.rootproject import ENV, JOURNAL_FILES, root_project

GOOD_ENV = "SHOP_API_TOKEN=tok_Zq8vN3rLk5wT1yXb7mP0sJ4h\nDATABASE_URL=sqlite:///shop.db\n"
MISSING = "venv-that-is-not-there/bin/python"


def test_a_configured_interpreter_that_does_not_exist_changes_nothing(tmp_path: Path) -> None:
    project = root_project(tmp_path)
    toml = project.file("config/deploy.toml")
    text = toml.read_text()
    prod = f'env_file = "config/{ENV}.env"\n'
    toml.write_text(text.replace(prod, f'{prod}python = "{MISSING}"\n', 1))
    project.write_env(ENV, GOOD_ENV)
    before = project.snapshot()

    deploy = project.invoke("deploy", "--env", ENV)
    migrate = project.invoke("db.migrate", "--env", ENV)

    for run in (deploy, migrate):
        assert run.returncode == 2 and "Traceback" not in run.output, run.output
        assert f"python {project.path}/{MISSING} does not exist on local" in run.stderr
        assert f"environments.{ENV}.python" in run.stderr
    assert "deploy failed at step 'validate env': " in deploy.stderr
    after = project.snapshot()
    assert not project.file("shop.db").exists()
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) <= {f".deploytools/{ENV}/{n}" for n in JOURNAL_FILES}


COMPOSE_ENV = """
[environments.cm]
env_file = "config/cm.env"
env_example = "config/local.env.example"
runtime = "compose"
compose = { project_name = "cm", files = ["docker-compose.cm.yml"] }
database = { migrate_service = "api" }
"""


def test_a_migration_service_the_compose_files_lack_changes_nothing(
    tmp_path: Path, docker_engine: DockerEngine
) -> None:
    """Refused from the compose files, before the journal or the database is touched."""
    project = TempProject(tmp_path)
    with project.file("config/deploy.toml").open("a") as toml:
        toml.write(COMPOSE_ENV)
    project.file("docker-compose.cm.yml").write_text(
        "services:\n  backend:\n    image: ${IMAGE_NAME}:${RELEASE_ID}\n"
        "  worker:\n    image: ${IMAGE_NAME}:${RELEASE_ID}\n"
    )
    text = project.file("config/local.env.example").read_text()
    project.write_env("cm", text.replace("<secret-key>", "Yh3kQ9wZ2mV8xR5tL1nB7cD4fG6jP0sA"))
    before = project.snapshot()

    run = project.invoke("db.migrate", "--env", "cm")

    assert run.returncode == 2 and "Traceback" not in run.output, run.output
    assert "database.migrate_service 'api' is not a service of compose project cm" in run.stderr
    assert "(services: backend, worker)" in run.stderr
    assert "environments.cm.database.migrate_service" in run.stderr
    after = project.snapshot()
    # The runtime's own state files at most: no journal line, no database file.
    assert all(p.startswith(".deploytools/cm/compose.") for p in set(after) - set(before))
    assert {k: v for k, v in after.items() if k in before} == before
