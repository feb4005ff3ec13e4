"""An SSH host that cannot be reached, as an operator meets it through the CLI: one clear
message (host, address, what happened, fix) and exit 1 within ``timeouts.connect``, with no
traceback or paramiko log lines after it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.cli import TempProject
from tests.support.procs import free_port

CONNECT_TIMEOUT = 2
MARGIN = 5.0  # the CLI's own start-up on a loaded machine
REMOTE_ENV = """
[environments.remote]
env_file = "config/remote.env"
env_example = "config/local.env.example"
runtime = "process"
timeouts = {{ connect = {timeout} }}

[[environments.remote.hosts]]
name = "web-1"
address = "127.0.0.1"
port = {port}
user = "deploy"
known_hosts = "{known_hosts}"
"""


@contextmanager
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word (no SSH banner)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


def remote_project(tmp_path: Path, port: int) -> TempProject:
    project = TempProject(tmp_path)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    with project.file("config/deploy.toml").open("a") as toml:
        toml.write(REMOTE_ENV.format(timeout=CONNECT_TIMEOUT, port=port, known_hosts=known_hosts))
    project.write_env("remote", "ENVIRONMENT=production\n")
    return project


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        ("refused", "connection refused (nothing listens on that port)"),
        (
            "silent",
            f"no SSH greeting within {CONNECT_TIMEOUT}s: what listens on that port is not an SSH"
            " server, or it is stuck",
        ),
    ],
)
def test_an_unreachable_ssh_host_is_one_clear_message(tmp_path: Path, kind: str, what: str) -> None:
    with silent_port() as silent:
        port = silent if kind == "silent" else free_port()
        project = remote_project(tmp_path, port)
        started = time.monotonic()
        run = project.invoke("lock.status", "--env", "remote")
        elapsed = time.monotonic() - started

    assert run.returncode == 1, run.output
    assert run.stderr == (
        f"error: cannot connect to web-1 (deploy@127.0.0.1:{port}): {what}\n"
        "  fix: check that the host is up, that sshd listens on 127.0.0.1 port"
        f" {port} and that the network allows it\n"
    )
    assert run.stdout == ""
    assert elapsed < CONNECT_TIMEOUT + MARGIN
