"""docker compose argv builders: exact lists, nothing run."""

from __future__ import annotations

from deploytools.commands import compose

P = compose.Project(
    name="app-prod",
    files=("/srv/app/docker-compose.prod.yml", "/srv/app/docker-compose.test.yml"),
    env_file="/srv/app/config/prod.env",
    directory="/srv/app",
)
BASE = [
    "docker", "compose", "-p", "app-prod",
    "-f", "/srv/app/docker-compose.prod.yml",
    "-f", "/srv/app/docker-compose.test.yml",
    "--env-file", "/srv/app/config/prod.env",
    "--project-directory", "/srv/app",
]  # fmt: skip


def test_project_without_env_file_or_directory() -> None:
    bare = compose.Project(name="p", files=("c.yml",))
    assert bare.base() == ["docker", "compose", "-p", "p", "-f", "c.yml"]


def test_version_and_server_version() -> None:
    assert compose.version() == ["docker", "compose", "version", "--short"]
    assert compose.server_version("/usr/bin/docker") == [
        "/usr/bin/docker", "version", "--format", "{{.Server.Version}}"
    ]  # fmt: skip


def test_config_commands() -> None:
    assert compose.config_json(P) == [*BASE, "config", "--format", "json"]


def test_build_with_args_and_services() -> None:
    argv = compose.build(P, ["backend"], build_args={"BASE_IMAGE": "local/py:1", "X": "a b"})
    assert argv == [
        *BASE, "build", "--build-arg", "BASE_IMAGE=local/py:1", "--build-arg", "X=a b", "backend"
    ]  # fmt: skip
    assert compose.build(P, pull=True) == [*BASE, "build", "--pull"]


def test_up_all_services_never_pulls_or_builds_and_removes_orphans() -> None:
    up = [*BASE, "up", "--detach", "--pull", "never", "--no-build", "--remove-orphans"]
    assert compose.up(P) == up


def test_up_named_services_leaves_their_dependencies_alone() -> None:
    assert compose.up(P, ["celery-worker"], build=True, pull="missing") == [
        *BASE, "up", "--detach", "--pull", "missing", "--build", "--no-deps", "celery-worker"
    ]  # fmt: skip


def test_stop_down_ps_logs_exec() -> None:
    assert compose.stop(P, ["celery-worker"], timeout=5) == [
        *BASE, "stop", "--timeout", "5", "celery-worker"
    ]  # fmt: skip
    assert compose.down(P) == [*BASE, "down", "--remove-orphans", "--timeout", "20"]
    assert compose.down(P, timeout=3, volumes=True)[-1] == "--volumes"
    assert compose.ps(P) == [*BASE, "ps", "--all", "--format", "json"]
    logs = [*BASE, "logs", "--no-color", "--tail", "7", "backend"]
    assert compose.logs(P, "backend", tail=7) == logs
    assert compose.exec_(P, "backend", ["alembic", "current"]) == [
        *BASE, "exec", "-T", "backend", "alembic", "current"
    ]  # fmt: skip


def test_image_commands() -> None:
    assert compose.image_ids(["app:r1", "app:r2"]) == [
        "docker", "image", "inspect", "--format", "{{.Id}}", "app:r1", "app:r2"
    ]  # fmt: skip
    assert compose.remove_images(["app:r1"]) == ["docker", "image", "rm", "app:r1"]


def test_tag_image_names_an_image_by_its_id() -> None:
    assert compose.tag_image("sha256:abc", "app:r1", "/usr/bin/docker") == [
        "/usr/bin/docker", "image", "tag", "sha256:abc", "app:r1"
    ]  # fmt: skip


def test_save_and_load_images() -> None:
    assert compose.save_images(["a:r1", "b:r1"]) == ["docker", "image", "save", "a:r1", "b:r1"]
    assert compose.load_images("/usr/bin/docker") == ["/usr/bin/docker", "image", "load", "--quiet"]
