"""Session-scoped real servers, shared by every integration test and torn down at session end.

Each fixture is a thin wrapper over a context manager in ``tests/support`` (usable without
pytest fixtures too). A missing program skips the tests that need it, with an install hint,
or fails them under ``DEPLOYTOOLS_REQUIRE_INTEGRATION=1``.

Under pytest-xdist (``nox -s tests`` runs ``--dist loadgroup``) each worker has servers of its
own, and the tests of one file stay on one worker (its module fixtures are made once), except
that every test on the shared Docker engine goes to the same worker: they share its images and
compose projects, and only that worker starts ``dockerd``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.docker_engine import DockerEngine
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer
from tests.support.sshd import SshHosts, SshTarget

DOCKER_GROUP = "shared-docker-engine"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """An xdist group per test file, one for every test on the shared Docker engine."""
    for item in items:
        uses_engine = "docker_engine" in getattr(item, "fixturenames", ())
        group = DOCKER_GROUP if uses_engine else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster: ``.url(db)``, ``.create_database(name)``, ``.stop()/.start()``."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server: ``.port``, ``.url(db)``, ``.stop()/.start()``."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A Docker engine with compose v2 and ``.base_image`` (local/python-base:bookworm)."""
    with DockerEngine() as engine:
        yield engine


@pytest.fixture(scope="session")
def ssh_hosts() -> Iterator[Callable[[str], SshTarget]]:
    """``make(name)``: a simulated host (its own sshd and deploy root), started once per name."""
    with SshHosts() as hosts:
        yield hosts.make
