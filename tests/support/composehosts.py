"""The tiny compose app over two simulated hosts, each an sshd whose sessions use a Docker
engine of their own (``DOCKER_HOST`` set by sshd): for the tests of a release built once on
the primary and shipped to the other host, streamed or through a registry (``registry``).

The primary builds in the project's checkout; the second host has nothing but what the deploy
puts there. Each host serves on a port of its own (the host's ``env``). A database every host
reaches (SQLite is for one machine); no revision to apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deploytools.env.file import update
from deploytools.hosts.local import LocalHost
from tests.support.deployproject import health
from tests.support.extra_engine import ExtraEngine
from tests.support.postgres_server import PostgresServer
from tests.support.procs import service_port
from tests.support.registry_server import RegistryServer
from tests.support.sshd import SshTarget
from tests.support.tinyapp import ENV, TinySite

NAMESPACE = "team"


class ComposeHosts:
    def __init__(
        self,
        tiny: TinySite,
        targets: list[SshTarget],
        engines: list[ExtraEngine],
        registry: RegistryServer | None,
        port2: int,
    ) -> None:
        self.tiny = tiny
        self.targets = targets
        self.engines = engines
        self.registry = registry
        self.ports = [tiny.port, port2]

    def serving(self) -> list[str | None]:
        """The release each host's /health names (None: nothing healthy answers)."""
        found: list[str | None] = []
        for port in self.ports:
            status, body = health(port)
            ok = status == 200 and body.get("status") == "healthy"
            found.append(str(body["release"]) if ok else None)
        return found

    def images(self, engine: ExtraEngine) -> set[str]:
        """The app's images (name:tag) ``engine`` has."""
        out = engine.check("image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
        return {line for line in out.split() if line.startswith(self.tiny.image + ":")}

    def steps(self, since: int, step: str) -> list[dict[str, Any]]:
        """The journal's lines of ``step`` done on a host since line ``since``."""
        return [
            e for e in self.tiny.journal_since(since)
            if e["kind"] == "host.step.done" and e["step"] == step
        ]  # fmt: skip

    def pulls(self) -> int:
        """Manifests of the app's image the registry served (each is one docker pull)."""
        assert self.registry is not None
        return self.registry.pulls(f"{NAMESPACE}/{self.tiny.image}")

    def deploy(self) -> str:
        """Deploy the current commit, which must succeed; its tag."""
        run = self.tiny.deploy()
        assert run.returncode == 0, run.output
        return str(self.tiny.project.releases(ENV)[-1]["tag"])

    def state_dirs(self) -> list[Path]:
        """Each host's state directory of the environment."""
        roots = [self.tiny.project.path, Path(self.targets[1].root)]
        return [root / f".deploytools/{ENV}" for root in roots]


@contextmanager
def compose_hosts(
    ssh_hosts: Callable[..., SshTarget],
    postgres_server: PostgresServer,
    path: Path,
    *,
    registry_server: RegistryServer | None = None,
    registry: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[ComposeHosts]:
    """Two hosts (``path``: the project, made; its name names the hosts and the database),
    through ``registry_server`` if given (``registry``: more of the ``compose.registry``
    table); ``env``: more of the env file."""
    with ExtraEngine() as first, ExtraEngine() as second:
        targets = [
            ssh_hosts(f"{path.name}-1", environment=first.env),
            ssh_hosts(f"{path.name}-2", environment=second.env),
        ]
        port2 = service_port()
        hosts = [
            {
                "name": t.name, "address": t.address, "port": t.port, "user": t.user,
                "key_file": t.key_file, "known_hosts": t.known_hosts,
                "root": str(path) if i == 0 else t.root, "primary": i == 0,
                **({"env": {"PORT": str(port2)}} if i else {}),
            }
            for i, t in enumerate(targets)
        ]  # fmt: skip
        settings: dict[str, Any] = {"hosts": hosts}
        if registry_server is not None:
            table = {"url": f"{registry_server.address}/{NAMESPACE}", **(registry or {})}
            settings["compose"] = {"registry": table}
        tiny = TinySite(path, first, **settings)
        url = postgres_server.create_database(f"compose_hosts_{path.name}")
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        values = {"DATABASE_URL": url, **(env or {})}
        update(LocalHost(), str(tiny.project.file(f"config/{ENV}.env")), values)
        try:
            yield ComposeHosts(tiny, targets, [first, second], registry_server, port2)
        finally:
            if registry_server is not None:
                registry_server.start()  # a test may have left it down
            tiny.cli("stack.down", "--env", ENV)
