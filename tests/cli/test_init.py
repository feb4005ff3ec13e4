"""``invoke init`` through the real CLI, in a project shaped like the trial's (compose files,
alembic at the root, a ``.env.example``, no deploytools file yet)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.cli import bootstrap
from tests.support.composeproject import compose_project

WRITTEN = ["tasks.py", "config/deploy.toml", "config/prod.env.example", "config/.gitignore"]
# The real .env's values (tests/support/composeproject.py): never copied anywhere.
REAL_VALUES = ("RealPassw0rd-9xq", "s3-real")
# Every hand-written line between `init` and a deploy: what init's warnings ask of the
# production compose file, and the env file's values.
COMPOSE_EDITS = {
    "  web:\n": "  web:\n    image: ${IMAGE_NAME}:${RELEASE_ID}\n    env_file: ${ENV_FILE}\n",
    "  worker:\n": "  worker:\n    image: ${IMAGE_NAME}:${RELEASE_ID}\n    env_file: ${ENV_FILE}\n",
}
ENV_FILE = """\
PORT=8000
CELERY_BROKER_URL=redis://127.0.0.1:6379/0
POSTGRES_PASSWORD=Kq7-vW2p-Zr9x-Lm4T
DATABASE_URL=sqlite:///var/shop.sqlite3
SECRET_KEY=Yh3kQ9wZ2mV8xR5tL1nB7cD4fG6jP0sA
"""


def git_commit(path: Path) -> None:
    for argv in (
        ["git", "init", "-q", "."],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "adopt"],
    ):
        subprocess.run(argv, cwd=path, check=True, capture_output=True, timeout=30)


def test_init_guesses_the_trial_project_and_verify_accepts_it(tmp_path: Path) -> None:
    project = compose_project(tmp_path)
    run = bootstrap(project)
    assert run.returncode == 0, run.output
    for line in (
        "backend service: web (runs uvicorn, publishes a port, has a healthcheck)",
        "celery app: app.worker (from the worker's command)",
        "probe: GET http://127.0.0.1:{PORT}/healthz (from its healthcheck) — check the path",
        "migrations: alembic (alembic.ini's script_location)",
        "migrations run in: web (the backend's image) — check it",
    ):
        assert f"  {line}\n" in run.stderr, run.stderr
    assert [p for p in WRITTEN if f"wrote {p}\n" in run.stderr] == WRITTEN
    written = "".join(project.file(p).read_text() for p in WRITTEN)
    assert not [v for v in REAL_VALUES if v in written]
    assert project.file("config/prod.env.example").read_text().splitlines()[1:] == [
        "PORT=8000",
        "CELERY_BROKER_URL=<change-me>",
        "POSTGRES_PASSWORD=<change-me>",
        "DATABASE_URL=postgresql+asyncpg://shop:<change-me>@db:5432/shop",
        "SECRET_KEY=<change-me>",
    ]

    assert run.stderr.count("warning: service ") == 4  # web and worker: image, env_file
    prod = project.file("docker-compose.prod.yml")
    text = prod.read_text()
    for old, new in COMPOSE_EDITS.items():
        text = text.replace(old, new)
    prod.write_text(text)
    project.write_env("prod", ENV_FILE)
    edited = sum(n.count("\n") - o.count("\n") for o, n in COMPOSE_EDITS.items())
    assert edited + len(ENV_FILE.splitlines()) <= 15
    again = project.invoke("init", "--dry-run")
    assert again.returncode == 0 and "warning" not in again.stderr, again.output
    git_commit(tmp_path)
    # No engine here either (see the dry run below): the migration round trip cannot build the
    # image (this sample has no Dockerfile) and runs on the project's interpreter instead, which
    # it says (a warning); the worker and redis have no healthcheck (the other warning).
    verify = project.invoke("verify", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert verify.returncode == 0, verify.output
    assert "all 8 checks passed (6 ok, 2 warning)" in verify.output, verify.output
    assert "could not run in the image of prod: the Docker engine on local is unreachable" in (
        verify.output
    ), verify.output
    validate = project.invoke("env.validate")  # no --env: default_environment is prod
    assert validate.returncode == 0, validate.output
    # The dry run gets past the config, the env file and the migrations to the runtime: this
    # machine's Docker engine, which a unit-level test must not use (a dead socket stands in).
    dry = project.invoke("deploy", "--dry-run", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert dry.returncode == 1, dry.output
    assert dry.stderr.startswith("error: the Docker engine on local is unreachable"), dry.stderr


def test_init_leaves_every_existing_file_alone(tmp_path: Path) -> None:
    project = compose_project(tmp_path)
    project.file("tasks.py").write_text("from deploytools.tasks import ns  # mine\n")
    project.file("config").mkdir()
    project.file("config/deploy.toml").write_text("# mine\n")
    run = project.invoke("init")
    assert run.returncode == 0, run.output
    assert "tasks.py exists: left as it is\n" in run.stderr
    assert "config/deploy.toml exists: left as it is\n" in run.stderr
    assert project.file("tasks.py").read_text() == "from deploytools.tasks import ns  # mine\n"
    assert project.file("config/deploy.toml").read_text() == "# mine\n"
    assert project.file("config/prod.env.example").is_file()
    again = project.invoke("init")
    assert again.returncode == 0 and "wrote" not in again.stderr, again.output


def test_dry_run_prints_the_files_and_writes_nothing(tmp_path: Path) -> None:
    project = compose_project(tmp_path)
    before = project.snapshot()
    run = bootstrap(project, "--dry-run")
    assert run.returncode == 0, run.output
    assert "--- config/deploy.toml (would write)\n" in run.stderr
    assert 'compose = { project_name = "' in run.stdout
    assert 'app = "app.worker"' in run.stdout
    assert project.snapshot() == before


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"services:\n  web:\n    image: a: b\n", "{path}: not valid YAML at line 3: mapping"),
        (b"services: [web, worker]\n", "{path}: not a compose file (no mapping of services)"),
        (b"services:\n  web:\n    image: caf\xe9\n", "cannot read {path}: not UTF-8 text"),
    ],
)
def test_a_broken_compose_file_stops_init_naming_it(
    tmp_path: Path, text: bytes, problem: str
) -> None:
    project = compose_project(tmp_path)
    path = project.file("docker-compose.prod.yml")
    path.write_bytes(text)
    before = project.snapshot()
    run = bootstrap(project)
    assert run.returncode == 2, run.output
    first = run.stderr.splitlines()[0]
    assert first.startswith(f"error: {problem.format(path=path)}"), run.stderr
    assert "Traceback" not in run.output and project.snapshot() == before


def test_an_alembic_ini_without_script_location_is_skipped_with_a_warning(tmp_path: Path) -> None:
    project = compose_project(tmp_path)
    project.file("alembic.ini").write_text("[alembic]\nsqlalchemy.url = sqlite://\n")
    run = bootstrap(project)
    assert run.returncode == 0, run.output
    ini = project.file("alembic.ini")
    assert f"warning: migrations not set up: {ini}: [alembic] script_location is missing" in (
        run.stderr
    )
    assert "  migrations: " not in run.stderr
    assert project.file("config/deploy.toml").is_file()
