"""A compose deploy over two hosts through a registry (``compose.registry``): the release is
built once on the primary, pushed to a real registry (Debian's docker-registry, on loopback)
and pulled by the second host, which has its own Docker engine, never built anything and has
no checkout; a redeploy of the same images pulls nothing; a rollback pulls the exact image its
release recorded; a registry that is down fails the deploy at the push, nothing started.

Each host is an sshd whose sessions use an engine of their own (``DOCKER_HOST`` set by sshd);
the engines talk plain HTTP to the registry on 127.0.0.1 with no configuration (127.0.0.0/8 is
in every engine's default insecure-registry ranges).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.composehosts import NAMESPACE, ComposeHosts, compose_hosts
from tests.support.postgres_server import PostgresServer
from tests.support.registry_server import RegistryServer
from tests.support.sshd import SshTarget
from tests.support.tinyapp import ENV

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(
    ssh_hosts: Callable[..., SshTarget],
    postgres_server: PostgresServer,
    registry_server: RegistryServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ComposeHosts]:
    path = tmp_path_factory.mktemp("registryhosts") / "rdock"
    with compose_hosts(ssh_hosts, postgres_server, path, registry_server=registry_server) as made:
        yield made


def test_the_second_host_pulls_the_release_from_the_registry(site: ComposeHosts) -> None:
    tiny, second = site.tiny, site.engines[1]
    count, pulls = len(tiny.project.journal(ENV)), site.pulls()

    tag = site.deploy()

    assert site.serving() == [tag, tag]
    image = f"{tiny.image}:{tag}"
    pulled = site.steps(count, "pull images")
    assert [(e["host"], e["pulled"]) for e in pulled] == [("rdock-2", [image])]
    assert site.steps(count, "ship images") == []  # not streamed
    assert site.pulls() == pulls + 1  # by the second host, from the registry
    built = second.check("image", "inspect", "--format", "{{.Id}}", image).strip()
    record = tiny.project.releases(ENV)[-1]
    assert record["images"] == {image: built}  # the id the primary built, pulled as is
    ref = f"{site.registry.address}/{NAMESPACE}/{tiny.image}@sha256:"
    assert record["pushed"][image].startswith(ref)
    # Only the release's own name holds the image: no registry name left behind.
    names = second.check("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert [n for n in names if site.registry.address in n] == []

    # The same code again: a new release, the same image id, which the host has: no pull.
    count, pulls = len(tiny.project.journal(ENV)), site.pulls()
    again = site.deploy()

    assert site.serving() == [again, again]
    assert [e["pulled"] for e in site.steps(count, "pull images")] == [[]]
    assert site.pulls() == pulls


def test_a_rollback_pulls_the_image_its_release_recorded(site: ComposeHosts) -> None:
    tiny, second = site.tiny, site.engines[1]
    first = site.deploy()
    tiny.release("registry-next")
    site.deploy()
    image = f"{tiny.image}:{first}"
    recorded = next(r for r in tiny.project.releases(ENV) if r["tag"] == first)["pushed"][image]
    # Gone from the second host: the image itself, under every name (an earlier release of
    # the same code has the same id).
    gone = second.check("image", "inspect", "--format", "{{.Id}}", image).strip()
    second.check("image", "rm", "--force", gone)
    count, pulls = len(tiny.project.journal(ENV)), site.pulls()

    run = tiny.cli("rollback", "--env", ENV, "--tag", first)

    assert run.returncode == 0, run.output
    assert site.serving() == [first, first]
    pulled = site.steps(count, "pull images")
    assert {e["host"]: e["pulled"] for e in pulled} == {"rdock-1": [], "rdock-2": [image]}
    assert site.pulls() == pulls + 1
    assert tiny.project.releases(ENV)[-1]["pushed"] == {image: recorded}


def test_a_registry_that_is_down_fails_the_deploy_at_the_push(site: ComposeHosts) -> None:
    tiny = site.tiny
    before = site.deploy()
    tiny.release("registry-down")
    count = len(tiny.project.journal(ENV))
    site.registry.stop()
    try:
        run = tiny.deploy()
    finally:
        site.registry.start()

    assert run.returncode == 1, run.output
    said = " ".join(run.output.split())
    assert f"cannot push {tiny.image}:" in said, run.output
    assert f"to registry {site.registry.address}/{NAMESPACE} from rdock-1" in said
    assert "connection refused" in said
    failed = tiny.project.releases(ENV)[-1]
    assert (failed["result"], failed["failed_step"]) == ("failed", "push images")
    journal = tiny.journal_since(count)
    assert not [e for e in journal if e.get("step") in ("pull images", "migrate", "roll out")]
    assert site.serving() == [before, before]  # nothing started anywhere
    assert not (tiny.project.state_dir(ENV) / "deploy.lock").exists()
