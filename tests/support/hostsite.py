"""A project deployed over simulated SSH hosts (process runtime), each its own sshd, key, root.

The app is the trial-shaped ``shop`` (its /health says its release), its database one of the
session's PostgreSQL; migrated once, on the primary (the first host). Each host's service
listens on a port of its own (the host's ``env``: they share this machine's loopback). A host
is made to fail by a release's own code (it exits when it listens on that host's port), so that
the release before still runs there when the host is taken back.
"""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Run, TempProject
from tests.support.deployproject import DEPLOY_TIMEOUT, health, release_lock, toml_text
from tests.support.postgres_server import PostgresServer
from tests.support.procs import service_port
from tests.support.rootproject import ENV
from tests.support.shophosts import shop_project
from tests.support.sshd import SshTarget

TOKEN = "shop-token-3c9e1f7a5b2d4e60"
WEB = {
    "command": ["{python}", "-m", "shop"],
    "probe": {"url": "http://127.0.0.1:{PORT}/health", "timeout": 15},
}


class HostSite:
    """The project, its hosts (the first one the primary) and what each one serves."""

    def __init__(self, project: TempProject, targets: list[SshTarget], url: str) -> None:
        self.project = project
        self.targets = targets
        self.names = [t.name for t in targets]
        self.url = url
        self.ports = {t.name: str(service_port()) for t in targets}
        self.commits = 0

    def configure(
        self,
        *,
        max_fail: int = 0,
        extra: SshTarget | None = None,
        roles: Mapping[str, list[str]] | None = None,
        services: Mapping[str, Any] | None = None,
        known_hosts: Mapping[str, str] | None = None,
        timeouts: Mapping[str, float] | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """The environment's config: ``roles`` host -> its roles (default: web), ``services``
        name -> settings (default: the web service alone), ``known_hosts`` host -> the file
        its key is checked against (default: the fixture's, which knows every host); ``edit``
        changes the environment's table before it is written."""
        known = known_hosts or {}
        hosts = [
            {
                "name": t.name, "address": t.address, "port": t.port, "user": t.user,
                "key_file": t.key_file, "known_hosts": known.get(t.name, t.known_hosts),
                "root": t.root,
                "primary": t.name == self.names[0],
                "env": {"PORT": self.ports.get(t.name, "1")},
                **({"roles": roles[t.name]} if roles and t.name in roles else {}),
            }
            for t in [*self.targets, *([extra] if extra else [])]
        ]  # fmt: skip
        config: dict[str, Any] = {
            "project": {"name": "shop", "default_environment": ENV},
            "environments": {
                ENV: {
                    "env_file": f"config/{ENV}.env",
                    "env_example": f"config/{ENV}.env.example",
                    "runtime": "process",
                    "python": sys.executable,  # the app's interpreter on every host (alembic too)
                    "hosts": hosts,
                    "rollout": {"batch_size": 1, "max_fail": max_fail},
                    "timeouts": {"stop": 5, **(timeouts or {})},
                    # A copy: an ``edit`` must never change WEB for the tests after it.
                    "services": copy.deepcopy(dict(services or {"web": WEB})),
                }
            },
        }
        if edit is not None:
            edit(config["environments"][ENV])
        self.project.file("config/deploy.toml").write_text(toml_text(config))

    def commit(self, message: str, *, fail_on: str = "") -> None:
        """A new release; ``fail_on``: the host where its service exits at once."""
        self.commits += 1
        self.project.file("shop/version.py").write_text(f"VERSION = {self.commits}\n")
        port = self.ports[fail_on] if fail_on else ""
        self.project.file("shop/failing.py").write_text(f"PORT = {port!r}\n")
        for argv in (["add", "-A"], ["commit", "-q", "-m", message]):
            subprocess.run(["git", *argv], cwd=self.project.path, check=True, capture_output=True)

    def invoke(self, task: str, *args: str) -> Run:
        return self.project.invoke(task, "--env", ENV, *args, timeout=DEPLOY_TIMEOUT)

    def deploy(self, *args: str) -> Run:
        return self.invoke("deploy", *args)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """A deploy in the background, SIGTERM at its default (for signals)."""
        return self.project.start("deploy", "--env", ENV, *args)

    def serving(self) -> dict[str, str | None]:
        """host -> the release its service answers with (None: nothing answers)."""
        return {name: body.get("release") for name, body in self.bodies().items()}

    def bodies(self) -> dict[str, dict[str, Any]]:
        """host -> its service's /health answer (empty: nothing answers healthy)."""
        answers = {name: health(port) for name, port in self.ports.items()}
        return {name: body if status == 200 else {} for name, (status, body) in answers.items()}

    def state(self, name: str = "") -> Path:
        """Host ``name``'s state directory, the primary's by default (a simulated host: its
        root is on this machine)."""
        root = next(t.root for t in self.targets if t.name == (name or self.names[0]))
        return Path(root) / f".deploytools/{ENV}"

    def journal(self, name: str = "", file: str = "journal.jsonl") -> list[dict[str, Any]]:
        """A journal's records: the site's (on the primary), or ``file`` in host ``name``'s
        state directory."""
        text = (self.state(name) / file).read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def since_last_deploy(self) -> list[dict[str, Any]]:
        """The site journal's records from the last deploy's start on."""
        events = self.journal()
        last = max(i for i, e in enumerate(events) if e["kind"] == "deploy.start")
        return events[last:]

    def started(self) -> list[str]:
        """The hosts the last deploy began to start its release on, in order."""
        return [e["host"] for e in self.since_last_deploy()
                if e["kind"] == "host.step.start" and e["step"] == "start"]  # fmt: skip

    def last_tag(self) -> str:
        return [r for r in self.journal() if r["kind"] == "release"][-1]["tag"]

    def baseline(self) -> str:
        """Every host healthy on one release, the last one recorded, and the default config;
        that release's tag. Deploys a new release only when the hosts are not so already
        (each test starts from here, whatever ran before it: a deploy saved is ~10 s)."""
        self.configure()
        release_lock(self.project, ENV, self.state() / "deploy.lock")
        serving = set(self.serving().values())
        if len(serving) == 1 and None not in serving and self._recorded() == serving:
            return serving.pop()  # type: ignore[return-value]
        self.commit("baseline")
        run = self.deploy()
        assert run.returncode == 0, run.output
        tag = self.last_tag()
        assert self.serving() == dict.fromkeys(self.names, tag)
        return tag

    def _recorded(self) -> set[str]:
        """The tag of the last release the site recorded as deployed (none: an empty set)."""
        if not (self.state() / "journal.jsonl").exists():
            return set()
        done = [r for r in self.journal() if r["kind"] == "release" and r.get("result") == "ok"]
        return {done[-1]["tag"]} if done else set()

    def roots(self) -> dict[str, tuple[bytes, int]]:
        """Every file under every host's root (bytes and mode): what "nothing changed on any
        host" compares."""
        return {
            str(p): (p.read_bytes(), p.stat().st_mode)
            for t in self.targets
            for p in sorted(Path(t.root).rglob("*"))
            if p.is_file() and not p.is_symlink()
        }


@contextlib.contextmanager
def host_site(
    names: Sequence[str],
    ssh_hosts: Callable[[str], SshTarget],
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[HostSite]:
    """The shop project over hosts ``names`` (the first the primary), its own database; every
    host's stack stopped afterwards."""
    database = "deploy_" + "_".join(names).replace("-", "_")
    url = postgres_server.create_database(database)
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    env_file = f"SHOP_API_TOKEN={TOKEN}\nDATABASE_URL={url}\n"
    project = shop_project(tmp_path_factory.mktemp("hosts") / "shop", {ENV: env_file})
    site = HostSite(project, [ssh_hosts(name) for name in names], url)
    try:
        yield site
    finally:
        site.configure()
        project.invoke("stack.down", "--env", ENV, timeout=DEPLOY_TIMEOUT)


def site_fixture(names: Sequence[str]) -> Any:
    """A module's ``site`` fixture: the shop project over hosts ``names``, once per module
    (``site = site_fixture(("a-1", "a-2"))`` in the test module)."""

    @pytest.fixture(scope="module")
    def site(
        ssh_hosts: Callable[[str], SshTarget],
        postgres_server: PostgresServer,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Iterator[HostSite]:
        with host_site(names, ssh_hosts, postgres_server, tmp_path_factory) as hosts:
            yield hosts

    return site
