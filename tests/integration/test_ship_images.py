"""A compose release's image shipped, without a registry, to hosts that never built it.

Two simulated hosts, each an sshd whose sessions talk to a Docker engine of its own
(``DOCKER_HOST`` set by sshd, as a machine's own default engine would be): the image is built
in the shared engine (the controller's), streamed to host 1, run there; then streamed from
host 1 to host 2 (both ends over SSH) and run there. Shipping again sends nothing.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploytools.hosts.local import LocalHost
from deploytools.hosts.ssh import SshHost
from deploytools.runtime.ship import image_ids, ship_images
from tests.support.deployproject import unique
from tests.support.docker_engine import DockerEngine
from tests.support.extra_engine import ExtraEngine
from tests.support.sshd import SshTarget

pytestmark = pytest.mark.integration

HELLO = "import os; print('hello from', os.environ.get('RELEASE_ID'))\n"


@pytest.fixture(scope="module")
def image(docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tiny release image in the shared engine (the base image plus one file)."""
    context = tmp_path_factory.mktemp("shipimage")
    (context / "hello.py").write_text(HELLO)
    (context / "Dockerfile").write_text(
        f"FROM {docker_engine.base_image}\nCOPY hello.py /hello.py\n"
        'ENV RELEASE_ID=r1\nCMD ["python3", "/hello.py"]\n'
    )
    name = f"{unique('dt-ship')}:r1"
    build = ["docker", "build", "-q", "--network", "host", "-t", name, str(context)]
    built = subprocess.run(build, capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stderr
    yield name
    subprocess.run(["docker", "image", "rm", name], capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def engine_hosts(
    ssh_hosts: Callable[..., SshTarget],
) -> Iterator[list[SshHost]]:
    """Two hosts, each with its own engine, reached over its own sshd."""
    with ExtraEngine() as first, ExtraEngine() as second:
        hosts = []
        for name, engine in (("dock-1", first), ("dock-2", second)):
            hosts.append(ssh_hosts(name, environment=engine.env).connect())
        yield hosts
        for host in hosts:
            host.close()


def test_a_host_that_never_built_the_image_runs_it(
    image: str, engine_hosts: list[SshHost], tmp_path: Path
) -> None:
    first, second = engine_hosts
    controller = LocalHost("controller")
    assert image_ids(first, [image], 30, "docker") == {}  # its own engine: never had it
    wanted = image_ids(controller, [image], 30, "docker")

    shipped = ship_images(controller, first, [image], timeout=600)
    assert shipped.sent == [image] and shipped.bytes > 1_000_000
    assert image_ids(first, [image], 30, "docker") == wanted
    run = ["docker", "run", "--rm", "--network", "host", image]
    assert first.run(run, timeout=300).stdout == "hello from r1\n"

    again = ship_images(controller, first, [image], timeout=600)
    assert (again.sent, again.present, again.bytes) == ([], [image], 0)

    onward = ship_images(first, second, [image], timeout=600)  # SSH on both ends
    assert onward.sent == [image]
    assert image_ids(second, [image], 30, "docker") == wanted
    assert second.run(run, timeout=300).stdout == "hello from r1\n"
