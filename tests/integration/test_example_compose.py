"""The example stack under docker compose: the production file plus the test override.

Builds the image once per module from the local base image and the wheelhouse (no registry),
starts backend and celery-worker with host networking against the session's Postgres and Redis,
and checks that both become healthy and run the release they were built for, and that the
backend reads the flag state from the directory mounted read-only and follows a rewrite without
a restart. Each test starts from no containers; the image is removed at the end, also on
failure.
"""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.example import ComposeStack, celery_client
from tests.support.exampleflags import checkout, set_flag, wait_for
from tests.support.procs import free_port

pytestmark = pytest.mark.integration


Stack = tuple[ComposeStack, dict[str, str], Path]


@pytest.fixture(scope="module")
def built(
    docker_engine: Any,
    postgres_server: Any,
    redis_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The project with its image built; its env values; the flags directory it mounts."""
    tmp_path = tmp_path_factory.mktemp("example-compose")
    flags_dir = tmp_path / "flags"
    flags_dir.mkdir(mode=0o755)
    flags_dir.chmod(0o755)  # the app's user in the image (uid 10001) reads it
    database_url = postgres_server.create_database("exampleapp_compose")
    values = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server.url(3),
        "HOST": "127.0.0.1",  # host networking: listen on loopback only
        "PORT": str(free_port()),
        "LOG_LEVEL": "INFO",
    }
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    env_file.chmod(0o600)
    release = f"t{uuid.uuid4().hex[:10]}"
    stack = ComposeStack(docker_engine.docker, env_file, release=release, flags_dir=flags_dir)
    try:
        stack.check("build", timeout=900)
        yield stack, values, flags_dir
    finally:
        stack.run("down", "--volumes", "--remove-orphans", "--rmi", "all", "--timeout", "30")


@pytest.fixture
def stack(built: Stack) -> Iterator[Stack]:
    """The built project, its containers removed after the test (the image stays)."""
    try:
        yield built
    finally:
        built[0].run("down", "--volumes", "--remove-orphans", "--timeout", "30")


def inspect(docker: str, what: str) -> dict[str, Any]:
    done = subprocess.run(
        [docker, "inspect", what], capture_output=True, text=True, timeout=60, check=True
    )
    found: dict[str, Any] = json.loads(done.stdout)[0]
    return found


def test_stack_comes_up_healthy_on_its_release(stack: Stack) -> None:
    compose, values, _flags_dir = stack
    compose.check("up", "--detach", "--wait", "--wait-timeout", "180", timeout=300)

    assert compose.health() == {"backend": "healthy", "celery-worker": "healthy"}

    assert f"RELEASE_ID={compose.release}" in inspect("docker", compose.image)["Config"]["Env"]

    response = httpx.get(f"http://127.0.0.1:{values['PORT']}/health", timeout=10.0)
    assert response.status_code == 200
    assert response.json() == {
        "status": "healthy",
        "release": compose.release,
        "database": "ok",
        "redis": "ok",
    }

    client = celery_client(
        {"DATABASE_URL": values["DATABASE_URL"], "REDIS_URL": values["REDIS_URL"]}
    )
    try:
        canary = client.send_task("deploytools.canary").get(timeout=30)
    finally:
        client.close()
    assert canary == {"release": compose.release, "hostname": f"celery@{socket.gethostname()}"}


def test_backend_follows_the_mounted_flags_without_a_restart(stack: Stack) -> None:
    compose, values, flags_dir = stack
    set_flag(flags_dir / "flags.json", 0)
    compose.check("up", "--detach", "--wait", "--wait-timeout", "180", "backend", timeout=300)
    container = inspect("docker", compose.check("ps", "--quiet", "backend").strip())
    mounts = [m for m in container["Mounts"] if m["Destination"] == "/run/deploytools/flags"]
    assert [(m["Source"], m["RW"]) for m in mounts] == [(str(flags_dir), False)]
    assert "DEPLOYTOOLS_FLAGS_FILE=/run/deploytools/flags/flags.json" in container["Config"]["Env"]
    base_url = f"http://127.0.0.1:{values['PORT']}"
    assert checkout(base_url, "user-1") == "classic"

    set_flag(flags_dir / "flags.json", 100)  # a new inode: seen through the directory mount
    wait_for(lambda: checkout(base_url, "user-1"), "new")
    set_flag(flags_dir / "flags.json", 0)
    wait_for(lambda: checkout(base_url, "user-1"), "classic")
    after = inspect("docker", container["Id"])
    assert after["State"]["StartedAt"] == container["State"]["StartedAt"]
    assert after["RestartCount"] == 0
