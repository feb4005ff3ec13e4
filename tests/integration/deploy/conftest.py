"""The process-runtime project a deploy test module starts from, and the site view of it.

One project per module (its own temp repository, port, journal and state): a module's tests
share it and each starts from ``site.running()``; a module that needs another setup defines its
own ``project`` fixture, which takes precedence over this one. ``stack`` is the same for the
example under docker compose (tests/support/composedeploy.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.composedeploy import Stack, compose_stack
from tests.support.deployproject import DeployProject, process_env
from tests.support.processdeploy import ENV, ProcessSite
from tests.support.procs import service_port


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[DeployProject]:
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    proj = DeployProject(tmp_path_factory.mktemp(name) / "app")
    proj.configure({ENV: process_env(probe_timeout=8)})
    proj.init_env(ENV, {"PORT": str(service_port())})
    try:
        yield proj
    finally:
        proj.invoke("stack.down", "--env", ENV)


@pytest.fixture
def site(project: DeployProject) -> Iterator[ProcessSite]:
    """The project as a site; after the test, whatever lock a killed run left is removed."""
    here = ProcessSite(project)
    try:
        yield here
    finally:
        here.recover()


@pytest.fixture(autouse=True)
def _lock_released(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test of a module on the compose ``stack``: a lock its cut-short run left
    behind (pytest-timeout) is released, so that one failing test never fails the next."""
    yield
    if "stack" in request.fixturenames:
        request.getfixturevalue("stack").recover()


@pytest.fixture(scope="module")
def stack(
    docker_engine: Any,
    postgres_server: Any,
    redis_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Stack]:
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with compose_stack(postgres_server, redis_server, tmp_path_factory.mktemp(name)) as built:
        yield built
