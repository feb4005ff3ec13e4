"""Simulated remote hosts: one OpenSSH ``sshd`` per host name, each on its own loopback port.

Each host gets its own host key, its own deploy root directory and a line in a shared
``known_hosts`` file, so that clients keep strict host-key checking on. One client key logs in
to all of them (as the user running the tests). ``frozen_sessions`` stalls the connections to
one of them (their sshd processes stopped: the peer alive, no bytes coming).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from deploytools.config import HostSettings, TimeoutSettings
from deploytools.hosts.base import Result
from deploytools.hosts.ssh import SshHost
from tests.support import parts, procs
from tests.support.require import require

NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")


@dataclass(frozen=True)
class SshTarget:
    """How to reach one simulated host; all paths are plain strings."""

    name: str
    address: str
    port: int
    user: str
    key_file: str
    known_hosts: str
    root: str

    def connect(self, cls: type[SshHost] = SshHost) -> SshHost:
        """A client of this host (``cls``: a subclass a test needs), default timeouts."""
        return cls.from_settings(self.host_settings(), TimeoutSettings())

    def host_settings(self) -> HostSettings:
        """This host as an environment's ``[[hosts]]`` entry."""
        return HostSettings(
            name=self.name,
            address=self.address,
            port=self.port,
            user=self.user,
            key_file=self.key_file,
            known_hosts=self.known_hosts,
            root=self.root,
        )


class CountingSshHost(SshHost):
    """An ``SshHost`` that counts what it was asked: ``counts["run"]``, one SSH exec each (an
    sshd fork and a shell on the host), and ``counts["exists"]``, one SFTP look-up each."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts: Counter[str] = Counter()

    def run(self, argv: Sequence[str], **kwargs: Any) -> Result:
        self.counts["run"] += 1
        return super().run(argv, **kwargs)

    def exists(self, path: str) -> bool:
        self.counts["exists"] += 1
        return super().exists(path)


def counting(
    timeouts: TimeoutSettings, made: list[CountingSshHost]
) -> Callable[[HostSettings], AbstractContextManager[CountingSshHost]]:
    """A ``check_hosts`` connector: each host a ``CountingSshHost``, kept in ``made``, closed
    after its checks."""

    def connect(conf: HostSettings) -> AbstractContextManager[CountingSshHost]:
        host = CountingSshHost.from_settings(conf, timeouts)
        assert isinstance(host, CountingSshHost)
        made.append(host)
        return contextlib.closing(host)

    return connect


class SshHosts:
    """``make(name)`` starts (once per name) an sshd and returns its ``SshTarget``."""

    def __init__(self) -> None:
        sshd, ssh_keygen = parts.program("sshd"), shutil.which("ssh-keygen")
        require(sshd is not None and ssh_keygen is not None, "OpenSSH server", parts.PROVISION)
        assert sshd is not None and ssh_keygen is not None
        self._sshd = sshd
        self._keygen = ssh_keygen
        self._dir = Path(tempfile.mkdtemp(prefix="deploytools-ssh-"))
        self._servers = contextlib.ExitStack()  # stops every sshd, even if one stop fails
        self._servers.callback(shutil.rmtree, self._dir, ignore_errors=True)
        self._targets: dict[str, SshTarget] = {}
        self._environments: dict[str, dict[str, str]] = {}
        self.key_file = str(self._dir / "client_key")
        self.known_hosts = str(self._dir / "known_hosts")

    def __enter__(self) -> Self:
        try:
            if os.geteuid() == 0:
                Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
            keygen(self._keygen, Path(self.key_file))
            Path(self.known_hosts).touch()
        except BaseException:
            self._servers.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._servers.close()

    def make(self, name: str, environment: Mapping[str, str] | None = None) -> SshTarget:
        """The host called ``name``, started on first use and shared by later callers.

        ``environment`` is set by sshd in every session (``SetEnv``), as a machine's own
        profile would: e.g. ``DOCKER_HOST`` naming the host's own Docker engine.
        """
        if name in self._targets:
            if environment and self._environments.get(name) != dict(environment):
                raise ValueError(f"simulated host {name!r} was started with another environment")
            return self._targets[name]
        if not NAME.fullmatch(name):
            raise ValueError(f"simulated host name {name!r} must match {NAME.pattern}")
        server = _Sshd(
            self._sshd, self._keygen, name, Path(self.key_file + ".pub"), environment or {}
        )
        self._environments[name] = dict(environment or {})
        self._servers.enter_context(server)
        with open(self.known_hosts, "a") as known:
            known.write(server.known_hosts_line())
        self._targets[name] = SshTarget(
            name=name,
            address="127.0.0.1",
            port=server.port,
            user=getpass.getuser(),
            key_file=self.key_file,
            known_hosts=self.known_hosts,
            root=str(server.root),
        )
        return self._targets[name]


class _Sshd(procs.TempServer):
    """One ``sshd -D`` with a config of its own (the machine's sshd_config is not read)."""

    def __init__(
        self,
        sshd: str,
        ssh_keygen: str,
        name: str,
        client_pub: Path,
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(f"deploytools-sshd-{name}-")
        self._environment = dict(environment)
        self._sshd = sshd
        self._keygen = ssh_keygen
        self._client_pub = client_pub
        self.port = procs.free_port()
        self.root = self._dir / "root"
        self._config = self._dir / "sshd_config"
        self._host_key = self._dir / "host_key"
        self._log = self._dir / "sshd.log"

    def _prepare(self) -> None:
        self.root.mkdir()
        keygen(self._keygen, self._host_key)
        authorized = self._dir / "authorized_keys"
        shutil.copyfile(self._client_pub, authorized)
        self._config.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"Port {self.port}",
                    f"HostKey {self._host_key}",
                    f"PidFile {self._dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "StrictModes no",
                    "UsePAM no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "AllowTcpForwarding local",
                    "MaxSessions 50",
                    "Subsystem sftp internal-sftp",
                    # One line: of several SetEnv lines sshd reads only the first.
                    "SetEnv " + " ".join(f"{k}={v}" for k, v in self._settings().items()),
                    "",
                ]
            )
        )

    def _settings(self) -> dict[str, str]:
        """The sessions' environment: the host's own, and ``SHLVL=1`` so that bash does not
        read the user's ~/.bashrc for each command (bash reads it for sshd's commands only in
        a top-level shell). These hosts are this machine, whose root ~/.bashrc runs ``pyenv
        init`` (~0.2 s of CPU per remote command, a third of the CPU of a deploy on 8 hosts);
        a server's ~/.bashrc usually returns at once when not interactive, as Debian's does."""
        return {"SHLVL": "1", **self._environment}

    def start(self) -> None:
        if self._running():
            return
        argv = [self._sshd, "-D", "-e", "-f", str(self._config)]
        self._proc = procs.start(argv, self._log, cwd=self._dir)
        procs.wait_until(self._banner, f"sshd on port {self.port}", self._proc, self._log)

    def _banner(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                return sock.recv(64).startswith(b"SSH-")
        except OSError:
            return False

    def known_hosts_line(self) -> str:
        keytype, key = self._host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {keytype} {key}\n"


def keygen(ssh_keygen: str, path: Path) -> None:
    """A new passphrase-less ed25519 key pair at ``path`` and ``path``.pub."""
    subprocess.run(
        [ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", "deploytools-test", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )


@contextlib.contextmanager
def frozen_sessions(port: int) -> Iterator[list[int]]:
    """SIGSTOP the sshd processes serving this process's connections to 127.0.0.1:``port``
    (the peer stays alive but sends nothing: a stalled connection); SIGCONT them on exit."""
    pids = session_pids(port)
    if not pids:
        raise AssertionError(f"no open SSH connection from this process to port {port}")
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield pids
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def session_pids(port: int) -> list[int]:
    """The processes (other than this one) that hold the server end of a TCP connection from
    this process to 127.0.0.1:``port``: found through /proc/net/tcp and every /proc/*/fd."""
    ours = _socket_inodes(Path("/proc/self/fd"))
    rows = _tcp_rows()
    client_ports = {local for local, remote, inode in rows if remote == port and inode in ours}
    served = {inode for local, remote, inode in rows if local == port and remote in client_ports}
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            if _socket_inodes(entry / "fd") & served:
                pids.append(int(entry.name))
    return pids


def _tcp_rows() -> list[tuple[int, int, str]]:
    """(local port, remote port, socket inode) of every established loopback IPv4 socket."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if state == "01" and local.startswith("0100007F:") and remote.startswith("0100007F:"):
            rows.append((int(local.split(":")[1], 16), int(remote.split(":")[1], 16), inode))
    return rows


def _socket_inodes(fd_dir: Path) -> set[str]:
    inodes = set()
    try:
        for fd in fd_dir.iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    except OSError:
        pass  # the process is gone, or its fds are not ours to see
    return inodes
