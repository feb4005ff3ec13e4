"""``invoke stack.*`` and ``celery.verify`` as an operator types them, in a copy of the project.

Exit codes: 0 done, 1 the world said no (Docker down), 2 bad input (nothing started or
stopped). The env file's secret never shows in any output.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest

from tests.support import parts
from tests.support.cli import TempProject
from tests.support.procs import free_port
from tests.support.require import require
from tests.support.stackenv import EXAMPLE_DIR

pytestmark = pytest.mark.integration

SECRET = "Xq7-marker-secret-Vb2"
PROCESS_ENV = """
[environments.{name}]
env_file = "config/{name}.env"
env_example = "config/local.env.example"
runtime = "process"
app_dir = "{app_dir}"
celery = {{ ping_timeout = 10 }}

[environments.{name}.services.backend]
command = ["{{python}}", "-m", "uvicorn", "exampleapp.web:app", "--port", "{{PORT}}"]
probe = {{ url = "{url}", json_fields = {{ status = "healthy" }}, timeout = 60 }}

[environments.{name}.services.celery-worker]
command = ["{{python}}", "-m", "celery", "-A", "exampleapp.worker", "worker", "-n", "cli1@%h"]
"""
COMPOSE_ENV = """
[environments.{name}]
env_file = "config/{name}.env"
env_example = "config/local.env.example"
runtime = "compose"
compose = {{ project_name = "dtcli-{name}", directory = "{directory}", files = ["{file}"] }}
"""


def add_process_env(project: TempProject, name: str, url: str, values: dict[str, str]) -> None:
    text = PROCESS_ENV.format(name=name, app_dir=EXAMPLE_DIR, url=url)
    with project.file("config/deploy.toml").open("a") as toml:
        toml.write(text)
    project.write_env(name, "".join(f"{k}={v}\n" for k, v in values.items()))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TempProject]:
    root = tmp_path_factory.mktemp("stack-cli")
    proj = TempProject(root)
    values = {
        "PORT": str(free_port()),
        "SECRET_KEY": SECRET,
        "DATABASE_URL": f"sqlite:///{root}/app.sqlite3",
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_FS_ROOT": str(root / "celery"),
    }
    add_process_env(proj, "ptest", "http://127.0.0.1:{PORT}/health", values)
    add_process_env(proj, "pbad", "http://127.0.0.1:{PORT/health", values)
    try:
        yield proj
    finally:
        proj.invoke("stack.down", "--env", "ptest")


def test_up_wait_verify_status_logs_down(project: TempProject) -> None:
    up = project.invoke("stack.up", "--env", "ptest", "--release", "c1", "--wait")
    assert up.returncode == 0, up.output
    assert "backend healthy after" in up.stderr
    assert "backend stayed healthy for 5s" in up.stderr  # held, as in a deploy

    verify = project.invoke("celery.verify", "--env", "ptest", "--json")
    assert verify.returncode == 0, verify.output
    report = json.loads(verify.stdout)
    assert report["release"] == "c1"  # the running release, found by the runtime
    assert list(report["releases"].values()) == ["c1"]

    status = project.invoke("stack.status", "--env", "ptest", "--json")
    states = {row["service"]: row for row in json.loads(status.stdout)}
    assert {s["state"] for s in states.values()} == {"running"}
    assert states["backend"]["release"] == "c1"

    # --wait probed /health every 0.1 s for a while (and 5 s more, held): many access lines.
    logs = project.invoke("stack.logs", "--env", "ptest", "--service", "backend", "--lines", "500")
    assert logs.returncode == 0
    assert "backend release c1 starting" in logs.stdout

    down = project.invoke("stack.down", "--env", "ptest")
    assert down.returncode == 0
    gone = project.invoke("stack.status", "--env", "ptest", "--json")
    assert {row["state"] for row in json.loads(gone.stdout)} == {"missing"}
    for run in (up, verify, status, logs, down, gone):
        assert SECRET not in run.output


def test_bad_input_exits_2_and_starts_nothing(project: TempProject) -> None:
    unknown = project.invoke("stack.wait", "--env", "ptest", "--service", "nginx")
    assert unknown.returncode == 2
    assert "unknown service(s) nginx" in unknown.stderr
    assert "use one of: backend, celery-worker" in unknown.stderr
    bad_url = project.invoke("stack.up", "--env", "pbad", "--wait")
    assert bad_url.returncode == 2
    assert "environments.pbad.services.backend.probe.url: bad placeholder" in bad_url.stderr
    status = project.invoke("stack.status", "--env", "pbad", "--json")
    assert {row["state"] for row in json.loads(status.stdout)} == {"missing"}
    assert "Traceback" not in unknown.output + bad_url.output


def test_docker_not_running_is_named_with_the_fix(project: TempProject) -> None:
    docker = shutil.which("docker")
    require(docker is not None, "docker CLI", parts.PROVISION)
    require(parts.compose_v2_version(str(docker)) is not None, "compose v2 plugin", parts.PROVISION)
    compose = project.file("compose.yml")
    compose.write_text("services:\n  web:\n    image: busybox\n")
    with project.file("config/deploy.toml").open("a") as toml:
        toml.write(COMPOSE_ENV.format(name="dnone", directory=project.path, file=compose))
    project.write_env("dnone", "PORT=1\n")
    run = project.invoke(
        "stack.up", "--env", "dnone", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    )
    assert run.returncode == 1
    assert "the Docker engine on local is unreachable" in run.stderr
    assert "start the Docker daemon" in run.stderr
    assert "Traceback" not in run.output


def test_broken_compose_file_shows_composes_message(
    project: TempProject, docker_engine: object
) -> None:
    compose = project.file("broken.yml")
    compose.write_text("services:\n  web:\n    image: busybox\n    ports: [oops\n")
    with project.file("config/deploy.toml").open("a") as toml:
        toml.write(COMPOSE_ENV.format(name="dbroken", directory=project.path, file=compose))
    project.write_env("dbroken", "PORT=1\n")
    run = project.invoke("stack.up", "--env", "dbroken", "--release", "x1")
    assert run.returncode == 2
    assert f"compose files {compose} are not valid" in run.stderr
    assert "yaml" in run.stderr.lower()  # compose's own parser message
    assert "Traceback" not in run.output
