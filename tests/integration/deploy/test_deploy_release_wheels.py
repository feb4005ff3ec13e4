"""A release's virtualenv shipped as wheels (``releases.wheels``) to a host that cannot reach
any package index: a real sshd host whose sessions see only a dead index (``SetEnv``), the
control machine making the wheels from local find-links (no network either).

The trial-shaped ``shop`` (tests/support/hostsite.py) on one host (two for the wheels that
must stop every host's build), its service answering with
the version of ``shopdep`` it imports and the ``sys.prefix`` it runs on; its migration runs in
the release's virtualenv too (alembic, SQLAlchemy and psycopg from the example's wheelhouse).
Each test writes a requirements file of its own (a comment makes its digest unique), so that
none finds a virtualenv another one made.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Run
from tests.support.deployproject import DEPLOY_TIMEOUT, health
from tests.support.hostsite import HostSite, host_site
from tests.support.postgres_server import PostgresServer, alembic_revision
from tests.support.rootproject import ENV
from tests.support.sshd import SshTarget
from tests.support.venvshop import EXAMPLE_WHEELS, SERVICE
from tests.support.wheels import make_wheel

pytestmark = pytest.mark.integration

HOST = "wheels-1"
DEAD = "http://127.0.0.1:9/"  # the discard port: nothing listens, refused at once
# The host's sessions: no pip or uv config file (this machine's names local find-links), no
# index but a dead one, and no retry of it.
NO_INDEX = {
    "PIP_CONFIG_FILE": "/dev/null",
    "PIP_INDEX_URL": DEAD,
    "PIP_RETRIES": "0",
    "PIP_TIMEOUT": "5",
    "UV_NO_CONFIG": "1",
    "UV_INDEX_URL": DEAD,
}
WEB = {
    "command": ["{python}", "-m", "shop"],
    "probe": {"url": "http://127.0.0.1:{PORT}/health", "timeout": 30},
}


class WheelSite:
    """The site, and the control machine's package sources: local find-links, no index."""

    def __init__(self, site: HostSite, wheelhouse: Path) -> None:
        self.site = site
        self.control_env = {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": f"{EXAMPLE_WHEELS} {wheelhouse}",
        }

    def configure(self, releases: dict[str, Any]) -> None:
        def edit(environment: dict[str, Any]) -> None:
            del environment["python"]  # {python} and alembic: the release's own .venv
            environment["releases"] = releases
            environment["timeouts"]["venv"] = 300

        self.site.configure(services={"web": WEB}, edit=edit)

    def commit(self, requirement: str) -> None:
        """A release requiring ``requirement``, with a requirements file no other has."""
        self.site.project.file("requirements.txt").write_text(
            f"alembic\nsqlalchemy\npsycopg[binary]\n{requirement}\n# {uuid.uuid4().hex}\n"
        )
        self.site.commit(f"requires {requirement}")

    def deploy(self, *args: str) -> Run:
        return self.site.project.invoke(
            "deploy", "--env", ENV, *args, env=self.control_env, timeout=DEPLOY_TIMEOUT
        )

    def served(self) -> dict[str, Any]:
        status, body = health(self.site.ports[HOST])
        assert status == 200, body
        return body

    def built(self) -> dict[str, str]:
        """What the last deploy's build step on the host said it did."""
        done = [e for e in self.site.since_last_deploy()
                if e["kind"] == "host.step.done" and e["step"] == "build"]  # fmt: skip
        assert len(done) == 1, done
        return dict(done[0]["images"])

    def venvs(self) -> list[str]:
        return sorted(p.name for p in (self.site.state(HOST) / "venvs").iterdir())


def wheel_site(names: tuple[str, ...]) -> Any:
    """A module's fixture: the shop over offline hosts ``names`` (the first the primary),
    shopdep 1 and 2 in the control machine's find-links."""

    @pytest.fixture(scope="module")
    def fixture(
        ssh_hosts: Callable[..., SshTarget],
        postgres_server: PostgresServer,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Iterator[WheelSite]:
        wheelhouse = tmp_path_factory.mktemp("shopdep")
        for version in ("1", "2"):
            make_wheel(
                wheelhouse, "shopdep", version, {"shopdep/__init__.py": f"VALUE = {version}\n"}
            )
        offline = lambda name: ssh_hosts(name, NO_INDEX)  # noqa: E731
        with host_site(names, offline, postgres_server, tmp_path_factory) as site:
            site.project.file("shop/__main__.py").write_text(SERVICE)
            yield WheelSite(site, wheelhouse)

    return fixture


shop = wheel_site((HOST,))
pair = wheel_site(("wheels-a", "wheels-b"))  # wheels-a the primary


def test_a_host_without_an_index_cannot_make_the_virtualenv_itself(shop: WheelSite) -> None:
    shop.configure({"venv": "requirements.txt"})
    shop.commit("shopdep==1")

    run = shop.deploy()

    assert run.returncode == 1, run.output
    assert "cannot make the virtualenv of release" in run.output
    assert "127.0.0.1:9" in run.output or "No matching distribution" in run.output, run.output


def test_with_wheels_the_host_installs_what_the_control_machine_made(shop: WheelSite) -> None:
    shop.configure({"venv": "requirements.txt", "wheels": True})
    shop.commit("shopdep==1")

    run = shop.deploy()

    assert run.returncode == 0, run.output
    built = shop.built()
    assert built["installer"] == "pip" and built["wheels"].endswith("wheels shipped"), built
    body = shop.served()
    assert (body["shopdep"], body["dist"]) == (1, "1")
    assert Path(body["prefix"]).resolve() == Path(built["venv"]).resolve()
    # migrated in the shipped virtualenv
    assert alembic_revision(shop.site.url.replace("+psycopg", "")) == "a1"
    assert not [n for n in shop.venvs() if n.startswith(".")]  # the shipped wheels are gone

    before = Path(built["venv"]).stat().st_ino
    shop.site.commit("other code, the same requirements")
    again = shop.deploy()

    assert again.returncode == 0, again.output
    reused = shop.built()
    assert "wheels" not in reused and "installer" not in reused, reused  # nothing shipped
    assert reused["venv"] == built["venv"] and Path(built["venv"]).stat().st_ino == before
    assert shop.served()["release"] == shop.site.last_tag()


def test_a_requirement_the_control_machine_cannot_build_touches_no_host(shop: WheelSite) -> None:
    shop.configure({"venv": "requirements.txt", "wheels": True})
    shop.commit("shopdep==3")
    before = shop.site.roots()

    run = shop.deploy()

    assert run.returncode == 1, run.output  # an operator's error, said as the host's build's
    assert "cannot make the wheels of requirements.txt on the control machine" in run.output
    assert "No matching distribution found for shopdep==3" in run.output
    assert "Traceback" not in run.output
    after = shop.site.roots()
    journals = [p for p in after if p.endswith(".jsonl") or "/locks/" in p]
    assert {p: v for p, v in after.items() if p not in journals} == {
        p: v for p, v in before.items() if p not in journals
    }


@pytest.mark.parametrize(
    ("releases", "said"),
    [
        ({"venv": "requirements.txt", "wheels": "yes"}, "valid boolean"),
        ({"wheels": True}, "releases.venv is not set"),
    ],
)
def test_bad_wheels_settings_are_refused(
    shop: WheelSite, releases: dict[str, Any], said: str
) -> None:
    shop.configure(releases)
    shop.commit("shopdep==1")
    before = shop.site.roots()

    run = shop.deploy()

    assert run.returncode == 2, run.output
    assert said in run.output and "releases" in run.output and "wheels" in run.output
    assert "Traceback" not in run.output
    assert shop.site.roots() == before


def test_wheels_that_cannot_be_made_stop_the_deploy_before_any_host_receives_the_release(
    pair: WheelSite,
) -> None:
    """wheels-a has the virtualenv of these requirements (it needs no wheels), wheels-b does
    not; then the control machine can no longer make them (its find-links lost shopdep):
    neither host gets the release, not even the one that needed nothing."""
    pair.configure({"venv": "requirements.txt", "wheels": True})
    pair.commit("shopdep==1")
    first = pair.deploy("--hosts", "wheels-a")
    assert first.returncode == 0, first.output
    releases = {name: pair.site.state(name) / "releases" for name in pair.site.names}
    before = {name: sorted(p.name for p in path.glob("*")) for name, path in releases.items()}
    pair.site.commit("other code, the same requirements")
    pair.control_env["PIP_FIND_LINKS"] = str(EXAMPLE_WHEELS)  # no shopdep any more

    run = pair.deploy()

    assert run.returncode == 1, run.output
    assert "cannot make the wheels of requirements.txt on the control machine" in run.output
    assert "No matching distribution found for shopdep==1" in run.output
    assert "Traceback" not in run.output
    after = {name: sorted(p.name for p in path.glob("*")) for name, path in releases.items()}
    assert after == before, run.output
    assert not [e for e in pair.site.since_last_deploy()
                if e["kind"] == "host.step.start" and e["step"] == "build"]  # fmt: skip
