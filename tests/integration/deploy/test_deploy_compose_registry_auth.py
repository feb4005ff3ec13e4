"""A compose deploy over two hosts through a registry that asks for a user and password
(htpasswd): the credentials come from the env file by the names ``compose.registry`` gives,
reach ``docker login`` on its standard input only, on each host, in a DOCKER_CONFIG of the
run's own that is gone afterwards; the password is on no command line of any process (the
hosts are this machine: ``/proc/*/cmdline`` shows their side too) and nowhere in the journal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.cmdlines import encodings, watch_cmdlines
from tests.support.composehosts import ComposeHosts, compose_hosts
from tests.support.postgres_server import PostgresServer
from tests.support.registry_server import RegistryServer
from tests.support.sshd import SshTarget
from tests.support.tinyapp import ENV

pytestmark = pytest.mark.integration

USER = "deployer"
PASSWORD = "Reg1stry-pass-9f3c2a"  # what the env file holds; the config names its key only


@pytest.fixture(scope="module")
def site(
    ssh_hosts: Callable[..., SshTarget],
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ComposeHosts]:
    path = tmp_path_factory.mktemp("registryauth") / "rauth"
    keys = {"user_key": "REGISTRY_USER", "password_key": "REGISTRY_PASSWORD"}
    with (
        RegistryServer(auth=(USER, PASSWORD)) as registry,
        compose_hosts(
            ssh_hosts,
            postgres_server,
            path,
            registry_server=registry,
            registry=keys,
            env={"REGISTRY_USER": USER, "REGISTRY_PASSWORD": PASSWORD},
        ) as made,
    ):
        yield made


def test_credentials_reach_docker_login_on_stdin_only_and_leave_nothing(
    site: ComposeHosts,
) -> None:
    tiny = site.tiny
    count = len(tiny.project.journal(ENV))
    home_config = Path.home() / ".docker/config.json"
    home_before = home_config.read_text() if home_config.exists() else None

    with watch_cmdlines([PASSWORD], hosted_by="deploytools-sshd-rauth-") as seen:
        tag = site.deploy()

    assert site.serving() == [tag, tag]
    pulled = site.steps(count, "pull images")
    assert [e["pulled"] for e in pulled] == [[f"{tiny.image}:{tag}"]]  # through the registry
    assert seen.lines == []
    # The control: the watch saw the hosts' side, docker login among it.
    assert any("--password-stdin" in line for line in seen.hosted), sorted(seen.hosted)
    assert seen.passes > 100
    journal = (site.state_dirs()[0] / "journal.jsonl").read_bytes()
    assert not any(form in journal for form in encodings(PASSWORD))
    for state in site.state_dirs():  # no login left on any host
        assert list(state.glob(".docker-config.*")) == [], state
    after = home_config.read_text() if home_config.exists() else None
    assert after == home_before  # the hosts' own docker config untouched
    assert site.registry.address not in json.dumps(after)


def test_a_wrong_password_fails_at_the_push_saying_so(site: ComposeHosts) -> None:
    tiny = site.tiny
    before = site.deploy()
    env_file = tiny.project.file(f"config/{ENV}.env")
    good = env_file.read_text()
    env_file.write_text(good.replace(PASSWORD, "not-the-password"))
    tiny.release("wrong-password")
    try:
        run = tiny.deploy()
    finally:
        env_file.write_text(good)

    assert run.returncode == 1, run.output
    said = " ".join(run.output.split())
    assert f"cannot log in to registry {site.registry.address} as {USER} on" in said, said
    assert tiny.project.releases(ENV)[-1]["failed_step"] == "push images"
    assert site.serving() == [before, before]
    for state in site.state_dirs():
        assert list(state.glob(".docker-config.*")) == [], state
