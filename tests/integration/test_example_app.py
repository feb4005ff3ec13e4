"""The example application against real servers: /health, and a real Celery worker.

The app runs as deploytools runs it in process mode (uvicorn and ``celery worker``
subprocesses). Stopping a session-scoped server is always undone in a ``finally``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.example import app_env, running_web, running_worker
from tests.support.procs import free_port

pytestmark = pytest.mark.integration

RELEASE = "rel-2024.06.1"
DATABASE = "exampleapp_health"


def get_health(base_url: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{base_url}/health", timeout=10.0)
    return response.status_code, response.json()


def wait_for_status(base_url: str, status: int, timeout: float = 20.0) -> dict[str, Any]:
    """Poll /health until it answers ``status`` (a restarted server takes a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        code, body = get_health(base_url)
        if code == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"/health still {code} after {timeout:.0f}s: {body}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def web(
    postgres_server: Any, redis_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The backend on a live Postgres and Redis; yields its base URL."""
    postgres_server.create_database(DATABASE)
    workdir = tmp_path_factory.mktemp("example-web")
    env = app_env(
        workdir,
        DATABASE_URL=postgres_server.url(DATABASE),
        REDIS_URL=redis_server.url(1),
        RELEASE_ID=RELEASE,
    )
    with running_web(env, workdir) as (base_url, _log):
        yield base_url


def test_health_is_200_with_postgres_and_redis_up(web: str) -> None:
    code, body = get_health(web)
    assert (code, body) == (
        200,
        {"status": "healthy", "release": RELEASE, "database": "ok", "redis": "ok"},
    )


def test_health_is_503_naming_the_database_while_postgres_is_down(
    web: str, postgres_server: Any
) -> None:
    password = urlsplit(postgres_server.url(DATABASE)).password
    postgres_server.stop()
    try:
        code, body = get_health(web)
    finally:
        postgres_server.start()
    assert code == 503
    assert body["status"] == "unhealthy"
    assert body["database"] != "ok" and "connect" in body["database"].lower()
    assert body["redis"] == "ok"
    assert password and password not in json.dumps(body)
    # Pooled connections died with the server: the app must recover, not stay unhealthy.
    assert wait_for_status(web, 200)["database"] == "ok"


def test_health_is_503_while_redis_is_down(web: str, redis_server: Any) -> None:
    redis_server.stop()
    try:
        code, body = get_health(web)
    finally:
        redis_server.start()
    assert code == 503
    assert body["status"] == "unhealthy"
    assert body["redis"] != "ok" and "connect" in body["redis"].lower()
    assert body["database"] == "ok"
    assert wait_for_status(web, 200)["redis"] == "ok"


def test_health_keeps_the_database_password_out_of_response_and_log(tmp_path: Path) -> None:
    password = "s3cret-Pa55word"
    # Nothing listens on that port: the check fails with the driver's error text.
    url = f"postgresql://app:{password}@127.0.0.1:{free_port()}/app"
    env = app_env(tmp_path, DATABASE_URL=url, RELEASE_ID=RELEASE)
    with running_web(env, tmp_path) as (base_url, log):
        response = httpx.get(f"{base_url}/health", timeout=10.0)
    assert response.status_code == 503
    assert response.json()["database"] != "ok"
    assert password not in response.text
    assert "unhealthy" in log.read_text()  # the failure was logged ...
    assert password not in log.read_text()  # ... without the password


def test_local_mode_is_healthy_without_any_server(tmp_path: Path) -> None:
    env = app_env(
        tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'app.sqlite3'}", FEATURE_NEW_CHECKOUT="25"
    )
    with running_web(env, tmp_path) as (base_url, _log):
        code, body = get_health(base_url)
        index = httpx.get(base_url, timeout=10.0).json()
    assert (code, body) == (
        200,
        {"status": "healthy", "release": "dev", "database": "ok", "redis": "disabled"},
    )
    assert index["flags"] == {"new_checkout": 25}


def check_worker(client: Any, release: str) -> None:
    """The worker runs a real task and reports its own release from the canary."""
    assert client.send_task("exampleapp.add", args=(2, 3)).get(timeout=20) == 5
    canary = client.send_task("deploytools.canary").get(timeout=20)
    assert canary["release"] == release
    assert canary["hostname"].endswith("@localhost")


def test_worker_over_the_filesystem_broker(tmp_path: Path) -> None:
    env = app_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'app.sqlite3'}", RELEASE_ID="fs-1")
    with running_worker(env, tmp_path, "fs") as client:
        assert client.conf.broker_url.startswith("filesystem://")
        check_worker(client, "fs-1")


def test_worker_over_redis(tmp_path: Path, redis_server: Any) -> None:
    env = app_env(
        tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'app.sqlite3'}",
        REDIS_URL=redis_server.url(2),
        RELEASE_ID="redis-1",
    )
    with running_worker(env, tmp_path, "redis") as client:
        assert client.conf.broker_url.startswith("redis://")
        check_worker(client, "redis-1")
