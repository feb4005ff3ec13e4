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

import pytest

from tests.support.composehosts import ComposeHosts, compose_hosts
from tests.support.postgres_server import PostgresServer
from tests.support.sshd import SshTarget
from tests.support.tinyapp import ENV

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_hosts(
    ssh_hosts: Callable[..., SshTarget],
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ComposeHosts]:
    path = tmp_path_factory.mktemp("composehosts") / "cdock"
    with compose_hosts(ssh_hosts, postgres_server, path) as made:
        yield made


def test_a_host_that_never_built_the_images_runs_the_release(two_hosts: ComposeHosts) -> None:
    site = two_hosts.tiny
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
    assert [e["host"] for e in two_hosts.steps(count, "ship images")] == ["cdock-2"]
    assert two_hosts.steps(count, "ship images")[0]["sent"] == [image]
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
    shipped = two_hosts.steps(count, "ship images")
    assert [e["sent"] for e in shipped] == [[f"{site.image}:{tag2}"]]
    assert two_hosts.images(second) == {image, f"{site.image}:{tag2}"}

    # Back to the first release, whose image the second host no longer has: shipped again,
    # and its compose files (from its commit) placed on that host, as on the primary.
    second.check("image", "rm", image)
    count = len(site.project.journal(ENV))
    run = site.cli("rollback", "--env", ENV, "--tag", tag)

    assert run.returncode == 0, run.output
    assert two_hosts.serving() == [tag, tag]
    assert [e["sent"] for e in two_hosts.steps(count, "ship images")] == [[image]]
    placed = second_root / f".deploytools/{ENV}/releases/{tag}/example/docker-compose.tiny.yml"
    assert placed.is_file()
