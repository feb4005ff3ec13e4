"""Session-scoped real servers, shared by every integration test and torn down at session end.

Each fixture is a thin wrapper over a context manager in ``tests/support`` (usable without
pytest fixtures too). A missing program skips the tests that need it, with an install hint,
or fails them under ``DEPLOYTOOLS_REQUIRE_INTEGRATION=1``.

Under pytest-xdist (``nox -s tests`` runs ``--dist loadfile``: the tests of one file on one
worker, its module fixtures made once) each worker has servers of its own, except the Docker
engine (one per machine: see tests/support/docker_engine.py). Tests on the engine name their
compose projects and images uniquely, so files run side by side on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.support.docker_engine import DockerEngine, stop_handed_over
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer
from tests.support.registry_server import RegistryServer
from tests.support.sshd import SshHosts, SshTarget


def pytest_unconfigure(config: pytest.Config) -> None:
    """The run's end (in the xdist controller, or the only process): stop the dockerd that a
    worker started and left running for the others."""
    if not hasattr(config, "workerinput"):
        stop_handed_over(os.getpid())


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
def registry_server() -> Iterator[RegistryServer]:
    """A container registry on loopback: ``.address`` (host:port), ``.stop()/.start()``."""
    with RegistryServer() as server:
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
