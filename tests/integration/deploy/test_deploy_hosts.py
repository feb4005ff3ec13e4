"""A deploy over several hosts (process runtime): each host its own sshd, key and root.

Three simulated hosts, the primary first; the app is the trial-shaped ``shop`` (its /health
says its release), its database the session's PostgreSQL, migrated once, on the primary. Each
host's service listens on a port of its own (the host's ``env``: they share this machine's
loopback). A host is made to fail by a release's own code (it exits when it listens on that
host's port), so that the release before still runs there when the host is taken back.

One project serves the module; every test first brings the three hosts to a healthy release
of its own (``baseline``), so none depends on another having run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Run, TempProject
from tests.support.deployproject import DEPLOY_TIMEOUT, health, toml_text
from tests.support.postgres_server import PostgresServer, alembic_revision
from tests.support.procs import free_port
from tests.support.rootproject import ENV, ENV_PY, REVISION, shop_service
from tests.support.sshd import SshTarget

pytestmark = pytest.mark.integration

HOSTS = ("roll-1", "roll-2", "roll-3")
TOKEN = "shop-token-3c9e1f7a5b2d4e60"
FAILING = (
    "import os, sys\nfrom shop.failing import PORT\n"
    "if os.environ['PORT'] == PORT:\n    sys.exit('this release fails on this host')\n"
)
A2 = REVISION.replace('"a1"', '"a2"').replace("down_revision = None", 'down_revision = "a1"')
A2 = A2.replace('"items"', '"orders"')


class Hosts:
    """The project, its three hosts and what each one serves."""

    def __init__(self, project: TempProject, targets: list[SshTarget], url: str) -> None:
        self.project = project
        self.targets = targets
        self.url = url
        self.ports = {t.name: str(free_port()) for t in targets}
        self.commits = 0

    def configure(self, *, max_fail: int = 0, extra: SshTarget | None = None) -> None:
        hosts = [
            {
                "name": t.name, "address": t.address, "port": t.port, "user": t.user,
                "key_file": t.key_file, "known_hosts": t.known_hosts, "root": t.root,
                "primary": t.name == HOSTS[0],
                "env": {"PORT": self.ports.get(t.name, "1")},
            }
            for t in [*self.targets, *([extra] if extra else [])]
        ]  # fmt: skip
        config = {
            "project": {"name": "shop", "default_environment": ENV},
            "environments": {
                ENV: {
                    "env_file": f"config/{ENV}.env",
                    "env_example": f"config/{ENV}.env.example",
                    "runtime": "process",
                    "python": sys.executable,  # the app's interpreter on every host (alembic too)
                    "hosts": hosts,
                    "rollout": {"batch_size": 1, "max_fail": max_fail},
                    "timeouts": {"stop": 5},
                    "services": {
                        "web": {
                            "command": ["{python}", "-m", "shop"],
                            "probe": {"url": "http://127.0.0.1:{PORT}/health", "timeout": 15},
                        }
                    },
                }
            },
        }
        self.project.file("config/deploy.toml").write_text(toml_text(config))

    def commit(self, message: str, *, fail_on: str = "") -> None:
        """A new release; ``fail_on``: the host where its service exits at once."""
        self.commits += 1
        self.project.file("shop/version.py").write_text(f"VERSION = {self.commits}\n")
        port = self.ports[fail_on] if fail_on else ""
        self.project.file("shop/failing.py").write_text(f"PORT = {port!r}\n")
        for argv in (["add", "-A"], ["commit", "-q", "-m", message]):
            subprocess.run(["git", *argv], cwd=self.project.path, check=True, capture_output=True)

    def deploy(self, *args: str) -> Run:
        return self.project.invoke("deploy", "--env", ENV, *args, timeout=DEPLOY_TIMEOUT)

    def serving(self) -> dict[str, str | None]:
        """host -> the release its service answers with (None: nothing answers)."""
        return {
            name: (health(port)[1].get("release") if health(port)[0] == 200 else None)
            for name, port in self.ports.items()
        }

    def journal(self) -> list[dict[str, Any]]:
        # The site's journal is the primary's (a simulated host: its root is on this machine).
        text = (Path(self.targets[0].root) / f".deploytools/{ENV}/journal.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def started(self) -> list[str]:
        """The hosts the last deploy began to start its release on, in order."""
        events = self.journal()
        last = max(i for i, e in enumerate(events) if e["kind"] == "deploy.start")
        return [e["host"] for e in events[last:]
                if e["kind"] == "host.step.start" and e["step"] == "start"]  # fmt: skip

    def last_tag(self) -> str:
        return [r for r in self.journal() if r["kind"] == "release"][-1]["tag"]

    def baseline(self) -> str:
        """Every host healthy on a release made for the calling test; its tag."""
        self.configure()
        self.commit("baseline")
        run = self.deploy()
        assert run.returncode == 0, run.output
        tag = self.last_tag()
        assert self.serving() == dict.fromkeys(HOSTS, tag)
        return tag


@pytest.fixture(scope="module")
def site(
    ssh_hosts: Callable[[str], SshTarget],
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Hosts]:
    path = tmp_path_factory.mktemp("hosts") / "shop"
    path.mkdir()
    project = TempProject(path, example=False)
    url = postgres_server.create_database("deploy_hosts")
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    files = {
        f"config/{ENV}.env.example": "SHOP_API_TOKEN=<token>\nDATABASE_URL=<url>\n",
        "shop/__init__.py": "",
        "shop/__main__.py": FAILING
        + shop_service("from shop.version import VERSION", '"version": VERSION'),
        "alembic.ini": "[alembic]\nscript_location = %(here)s/alembic\n",
        "alembic/env.py": ENV_PY,
        "alembic/versions/a1_create_items.py": REVISION,
        ".gitignore": "config/*.env\n__pycache__/\n",
    }  # fmt: skip
    for name, text in files.items():
        project.file(name).parent.mkdir(parents=True, exist_ok=True)
        project.file(name).write_text(text)
    project.write_env(ENV, f"SHOP_API_TOKEN={TOKEN}\nDATABASE_URL={url}\n")
    for argv in (["init", "-q", "-b", "main"], ["config", "user.email", "t@example.invalid"],
                 ["config", "user.name", "T"], ["config", "commit.gpgsign", "false"]):
        subprocess.run(["git", *argv], cwd=path, check=True, capture_output=True)  # fmt: skip
    hosts = Hosts(project, [ssh_hosts(name) for name in HOSTS], url)
    try:
        yield hosts
    finally:
        hosts.configure()
        project.invoke("stack.down", "--env", ENV, timeout=DEPLOY_TIMEOUT)


def test_a_three_host_deploy_ends_healthy_on_every_host(site: Hosts) -> None:
    site.baseline()
    site.commit("next")

    run = site.deploy()

    assert run.returncode == 0, run.output
    tag = site.last_tag()
    assert site.serving() == dict.fromkeys(HOSTS, tag)
    assert site.started() == list(HOSTS)  # one batch each, the primary first
    assert "roll out: per host" in run.output
    assert TOKEN not in run.output
    built = [e for e in site.journal() if e["kind"] == "host.step.done" and e["step"] == "build"]
    assert {e["host"] for e in built[-3:]} == set(HOSTS)
    assert all(e["images"]["shipped"].endswith("bytes shipped") for e in built[-3:]), built[-3:]
    for target in site.targets:  # the release as an archive of tracked files: no env file
        releases = Path(target.root) / f".deploytools/{ENV}/releases/{tag}"
        assert (releases / "shop/__main__.py").is_file()
        assert not [p for p in releases.rglob("*.env") if p.is_file()]


def test_an_unreachable_host_stops_the_deploy_before_anything_changes(site: Hosts) -> None:
    before = site.baseline()
    closed = SshTarget(**{**vars(site.targets[0]), "name": "roll-4", "port": free_port()})
    site.configure(extra=closed)
    site.commit("with a host that does not answer")

    run = site.deploy()

    assert run.returncode == 1 and "Traceback" not in run.output, run.output
    assert "deploy failed at step 'check hosts'" in run.stderr
    assert "roll-4" in run.stderr
    assert site.serving() == dict.fromkeys(HOSTS, before)
    last = [e for e in site.journal() if e["kind"] == "step.start"][-1]
    assert last["step"] == "check hosts"  # no lock, build, backup or migration


def test_one_failure_over_the_budget_stops_the_rollout_and_takes_every_host_back(
    site: Hosts,
) -> None:
    before = site.baseline()
    site.configure(max_fail=0)
    site.project.file("alembic/versions/a2_orders.py").write_text(A2)
    site.commit("a migration, and roll-2 fails", fail_on="roll-2")
    try:
        run = site.deploy()
    finally:
        site.project.file("alembic/versions/a2_orders.py").unlink()

    assert run.returncode == 1 and "Traceback" not in run.output, run.output
    assert "roll out failed" in run.stderr and "more than max_fail = 0" in run.stderr
    assert "not started: roll-3" in run.stderr
    assert site.serving() == dict.fromkeys(HOSTS, before)  # roll-1 and roll-2 taken back
    assert alembic_revision(site.url.replace("+psycopg", "")) == "a1"  # the migration undone
    assert site.started() == ["roll-1", "roll-2"]  # the batch of roll-3 never began


def test_one_failure_within_the_budget_lets_the_rollout_go_on(site: Hosts) -> None:
    before = site.baseline()
    site.configure(max_fail=1)
    site.commit("roll-2 fails, one failure allowed", fail_on="roll-2")

    run = site.deploy()

    tag = site.last_tag()
    assert run.returncode == 0, run.output
    assert tag != before
    assert "failed within max_fail = 1: roll-2" in run.stderr
    serving = site.serving()
    assert serving["roll-1"] == tag and serving["roll-3"] == tag
    assert serving["roll-2"] != tag
