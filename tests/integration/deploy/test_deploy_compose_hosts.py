"""A compose deploy over two hosts, each an sshd whose sessions use a Docker engine of its own
(``DOCKER_HOST`` set by sshd): the release is built once, on the primary, and its image
streamed to the second host, which never built it and has no checkout (its root is empty but
for what the deploy puts there), and runs the release healthy; a second release sends only its
new image; a rollback ships back the image of the release it returns to.

The app is the tiny busybox one (``tests/support/tinyapp.py``: a few MB, so a vfs engine loads
it in seconds); the primary's root is the project's checkout, where it builds. Each host serves
on a port of its own (the host's ``env``: they share this machine's loopback).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploytools.env.file import update
from deploytools.hosts.local import LocalHost
from tests.support.deployproject import health
from tests.support.extra_engine import ExtraEngine
from tests.support.postgres_server import PostgresServer
from tests.support.procs import free_port
from tests.support.sshd import SshTarget
from tests.support.tinyapp import ENV, TinySite

pytestmark = pytest.mark.integration


class TwoHosts:
    def __init__(self, site: TinySite, targets: list[SshTarget], engines: list[ExtraEngine]):
        self.site = site
        self.targets = targets
        self.engines = engines
        self.ports = [site.port, free_port()]

    def serving(self) -> list[str | None]:
        """The release each host's /health names (None: nothing healthy answers)."""
        found: list[str | None] = []
        for port in self.ports:
            status, body = health(port)
            ok = status == 200 and body.get("status") == "healthy"
            found.append(str(body["release"]) if ok else None)
        return found

    def images(self, engine: ExtraEngine) -> set[str]:
        out = engine.check("image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
        return {line for line in out.split() if line.startswith(self.site.image + ":")}

    def shipped(self, since: int) -> list[dict[str, Any]]:
        return [
            e for e in self.site.journal_since(since)
            if e["kind"] == "host.step.done" and e["step"] == "ship images"
        ]  # fmt: skip


@pytest.fixture(scope="module")
def two_hosts(
    ssh_hosts: Callable[..., SshTarget],
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TwoHosts]:
    with ExtraEngine() as first, ExtraEngine() as second:
        targets = [
            ssh_hosts("cdock-1", environment=first.env),
            ssh_hosts("cdock-2", environment=second.env),
        ]
        path = tmp_path_factory.mktemp("composehosts") / "tiny"
        port2 = free_port()
        hosts = [
            {
                "name": t.name, "address": t.address, "port": t.port, "user": t.user,
                "key_file": t.key_file, "known_hosts": t.known_hosts,
                # The primary builds in the checkout; the other host has nothing of it.
                "root": str(path) if i == 0 else t.root, "primary": i == 0,
                **({"env": {"PORT": str(port2)}} if i else {}),
            }
            for i, t in enumerate(targets)
        ]  # fmt: skip
        site = TinySite(path, first, hosts=hosts)
        # A database every host reaches (SQLite is for one machine); no revision to apply.
        url = postgres_server.create_database("deploy_compose_hosts")
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        update(LocalHost(), str(site.project.file(f"config/{ENV}.env")), {"DATABASE_URL": url})
        both = TwoHosts(site, targets, [first, second])
        both.ports[1] = port2
        try:
            yield both
        finally:
            site.cli("stack.down", "--env", ENV)


def test_a_host_that_never_built_the_images_runs_the_release(two_hosts: TwoHosts) -> None:
    site = two_hosts.site
    second = two_hosts.engines[1]
    second_root = Path(two_hosts.targets[1].root)
    assert two_hosts.images(second) == set()
    count = len(site.project.journal(ENV))

    run = site.deploy()

    assert run.returncode == 0, run.output
    tag = str(site.project.releases(ENV)[-1]["tag"])
    assert two_hosts.serving() == [tag, tag]
    image = f"{site.image}:{tag}"
    assert two_hosts.images(second) == {image}  # loaded, never built there
    built = [e for e in site.journal_since(count) if e["kind"] == "step.done"]
    assert "build" in {e["step"] for e in built}
    assert [e["host"] for e in two_hosts.shipped(count)] == ["cdock-2"]
    assert two_hosts.shipped(count)[0]["sent"] == [image]
    assert not (second_root / "example/tiny/Dockerfile").exists()  # no checkout, no build
    env_file = second_root / f"config/{ENV}.env"
    assert env_file.stat().st_mode & 0o777 == 0o600

    # A second release: only its new image goes over the wire.
    site.release("second")
    count = len(site.project.journal(ENV))
    run = site.deploy()

    assert run.returncode == 0, run.output
    tag2 = str(site.project.releases(ENV)[-1]["tag"])
    assert two_hosts.serving() == [tag2, tag2]
    shipped = two_hosts.shipped(count)
    assert [e["sent"] for e in shipped] == [[f"{site.image}:{tag2}"]]
    assert two_hosts.images(second) == {image, f"{site.image}:{tag2}"}

    # Back to the first release, whose image the second host no longer has: shipped again,
    # and its compose files (from its commit) placed on that host, as on the primary.
    second.check("image", "rm", image)
    count = len(site.project.journal(ENV))
    run = site.cli("rollback", "--env", ENV, "--tag", tag)

    assert run.returncode == 0, run.output
    assert two_hosts.serving() == [tag, tag]
    assert [e["sent"] for e in two_hosts.shipped(count)] == [[image]]
    placed = second_root / f".deploytools/{ENV}/releases/{tag}/example/docker-compose.tiny.yml"
    assert placed.is_file()
