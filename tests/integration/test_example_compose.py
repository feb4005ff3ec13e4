"""The example stack under docker compose: the production file plus the test override.

Builds the image from the local base image and the wheelhouse (no registry), starts backend and
celery-worker with host networking against the session's Postgres and Redis, and checks that
both become healthy and run the release they were built for. Torn down (containers and the
image) also on failure.
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
from tests.support.procs import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(
    docker_engine: Any, postgres_server: Any, redis_server: Any, tmp_path: Path
) -> Iterator[tuple[ComposeStack, dict[str, str]]]:
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
    stack = ComposeStack(docker_engine.docker, env_file, release=f"t{uuid.uuid4().hex[:10]}")
    try:
        yield stack, values
    finally:
        stack.run("down", "--volumes", "--remove-orphans", "--rmi", "all", "--timeout", "30")


def test_stack_comes_up_healthy_on_its_release(stack: tuple[ComposeStack, dict[str, str]]) -> None:
    compose, values = stack
    compose.check("build", timeout=900)
    compose.check("up", "--detach", "--wait", "--wait-timeout", "180", timeout=300)

    assert compose.health() == {"backend": "healthy", "celery-worker": "healthy"}

    inspected = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", compose.image],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )
    assert f"RELEASE_ID={compose.release}" in inspected[0]["Config"]["Env"]

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
