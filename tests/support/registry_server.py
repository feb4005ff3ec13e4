"""A throwaway container registry (the CNCF distribution registry, Debian's ``docker-registry``)
on a free loopback port, storing in its own directory.

Docker engines talk plain HTTP to a registry on 127.0.0.0/8 without ``insecure-registries``
(it is in every engine's default ``InsecureRegistryCIDRs``), so the tests' engines push and
pull with no configuration. ``stop``/``start`` take it down and bring it back on the same port
and storage (a registry that is down); ``pulls`` counts what its log says it served. With
``auth=(user, password)`` it asks for them (htpasswd, bcrypt: what the registry reads).
"""

from __future__ import annotations

import urllib.error
import urllib.request

from tests.support import parts, procs
from tests.support.require import require

CONFIG = """\
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""
AUTH = """\
auth:
  htpasswd:
    realm: deploytools-tests
    path: {htpasswd}
"""


class RegistryServer(procs.TempServer):
    """``with RegistryServer() as registry:`` a running registry at ``registry.address``."""

    def __init__(self, *, auth: tuple[str, str] | None = None) -> None:
        binary = parts.program("docker-registry")
        require(binary is not None, "docker-registry", parts.PROVISION)
        assert binary is not None
        self._binary = binary
        self.port = procs.free_port()
        super().__init__("deploytools-registry-")
        self.log = self._dir / "registry.log"
        self._config = self._dir / "config.yml"
        self._auth = auth

    @property
    def address(self) -> str:
        """``host:port``, as an image reference starts with it."""
        return f"127.0.0.1:{self.port}"

    def _prepare(self) -> None:
        storage = self._dir / "storage"
        storage.mkdir()
        config = CONFIG.format(storage=storage, port=self.port)
        if self._auth is not None:
            import bcrypt  # paramiko's own dependency

            user, password = self._auth
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
            htpasswd = self._dir / "htpasswd"
            htpasswd.write_text(f"{user}:{hashed}\n")
            config += AUTH.format(htpasswd=htpasswd)
        self._config.write_text(config)

    def start(self) -> None:
        if self._running():
            return
        self._proc = procs.start([self._binary, "serve", str(self._config)], self.log)
        procs.wait_until(self.answers, f"docker-registry on {self.address}", self._proc, self.log)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2) as reply:
                return bool(reply.status == 200)
        except urllib.error.HTTPError as exc:
            return exc.code == 401 and self._auth is not None  # up, and asks who is there
        except (OSError, urllib.error.URLError):
            return False

    def pulls(self, repository: str) -> int:
        """How many manifests of ``repository`` it has served (GET), from its access log."""
        text = self.log.read_text(errors="replace")
        needle = f'"GET /v2/{repository}/manifests/'
        return sum(1 for line in text.splitlines() if needle in line)
