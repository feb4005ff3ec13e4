"""How long the session servers of the integration tests take to start and stop.

Prints one line per server: start (enter) and stop (exit) in seconds, plus an SSH command's
round trip. The Docker line starts dockerd only if no engine answers yet, and imports the base
image only if the engine lacks it. Run as root after provisioning:
`python bench/server_startup.py`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploytools.hosts.ssh import SshHost
from tests.support.docker_engine import DockerEngine
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer
from tests.support.sshd import SshHosts


def timed(
    name: str, make: Callable[[], AbstractContextManager[Any]], use: Callable[[Any], str]
) -> None:
    started = time.perf_counter()
    with make() as server:
        up = time.perf_counter() - started
        note = use(server)
        stopping = time.perf_counter()
    down = time.perf_counter() - stopping
    print(f"{name:<8} start {up:6.2f}s  stop {down:5.2f}s  {note}")


def ssh_round_trip(hosts: SshHosts) -> str:
    started = time.perf_counter()
    target = hosts.make("bench")
    made = time.perf_counter() - started
    host = SshHost(
        target.name,
        target.address,
        port=target.port,
        user=target.user,
        key_file=target.key_file,
        known_hosts=target.known_hosts,
    )
    try:
        started = time.perf_counter()
        host.run(["true"])
        first = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(10):
            host.run(["true"])
        each = (time.perf_counter() - started) / 10
    finally:
        host.close()
    return f"(one sshd {made:.2f}s; connect+command {first:.2f}s; then {each:.3f}s a command)"


def main() -> None:
    timed("postgres", PostgresServer, lambda pg: f"(initdb + start; {pg.bindir})")
    timed("redis", RedisServer, lambda _: "")
    timed("sshd", SshHosts, ssh_round_trip)
    timed("docker", DockerEngine, lambda d: f"(compose {d.compose_version})")


if __name__ == "__main__":
    main()
