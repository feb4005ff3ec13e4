"""The session servers keep the promises other tests build on (stop/start, fresh databases)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.docker_engine import DockerEngine
from tests.support.postgres_server import PostgresServer, mixed_password
from tests.support.redis_server import RedisServer
from tests.support.sshd import SshTarget

pytestmark = pytest.mark.integration


def test_postgres_database_is_fresh_and_survives_a_restart(
    postgres_server: PostgresServer,
) -> None:
    import psycopg

    url = postgres_server.create_database("servers_check")
    assert url == postgres_server.url("servers_check")
    assert url.startswith(f"postgresql://{postgres_server.user}:")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (7)")
    postgres_server.stop()
    try:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2)
    finally:
        postgres_server.start()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT n FROM kept").fetchone() == (7,)
        assert conn.execute("SHOW fsync").fetchone() == ("off",)

    fresh = postgres_server.create_database("servers_check")  # drops the old one first
    with psycopg.connect(fresh) as conn:
        assert conn.execute("SELECT to_regclass('kept')").fetchone() == (None,)


def test_postgres_refuses_a_wrong_password(postgres_server: PostgresServer) -> None:
    import psycopg

    wrong = postgres_server.url("postgres").replace(postgres_server.password, "not-it")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5)


def test_postgres_passwords_pass_the_examples_strength_rule_every_time() -> None:
    """Tests put the server's password in the example's env files, whose rule wants 24
    characters of three kinds: a random draw must never miss (CI once drew one that did)."""
    from deploytools.env.check import character_classes

    drawn = [mixed_password() for _ in range(2000)]
    assert min(character_classes(p) for p in drawn) == 4
    assert min(len(p) for p in drawn) >= 24
    assert len(set(drawn)) == len(drawn)


def test_redis_goes_away_and_comes_back(redis_server: RedisServer) -> None:
    import redis

    assert redis_server.url(3) == f"redis://127.0.0.1:{redis_server.port}/3"
    client = redis.Redis.from_url(redis_server.url(3), socket_timeout=5)
    client.set("k", "v")
    assert client.get("k") == b"v"
    redis_server.stop()
    try:
        with pytest.raises(redis.ConnectionError):
            client.ping()
    finally:
        redis_server.start()
    assert client.ping() is True


def test_ssh_hosts_are_separate_and_shared_by_name(
    ssh_hosts: Callable[[str], SshTarget],
) -> None:
    web1, web2 = ssh_hosts("servers-web1"), ssh_hosts("servers-web2")
    assert ssh_hosts("servers-web1") is web1
    assert (web1.address, web2.address) == ("127.0.0.1", "127.0.0.1")
    assert web1.port != web2.port and web1.root != web2.root
    known = Path(web1.known_hosts).read_text()
    assert f"[127.0.0.1]:{web1.port} ssh-ed25519 " in known
    assert f"[127.0.0.1]:{web2.port} ssh-ed25519 " in known
    with socket.create_connection((web2.address, web2.port), timeout=5) as sock:
        assert sock.recv(64).startswith(b"SSH-2.0-OpenSSH")


def test_docker_runs_the_local_base_image_with_compose_v2(docker_engine: DockerEngine) -> None:
    assert docker_engine.compose_version.startswith("2.")
    script = "import sys, venv; print(sys.version_info[:2])"
    argv = ["docker", "run", "--rm", "--network", "host", docker_engine.base_image]
    done = subprocess.run(
        [*argv, "python3", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "(3, 11)"), done.stderr
