"""The throwaway database of the migration round trip: a PostgreSQL cluster of the gate's own
when this machine has the server binaries (the production engine: its DDL, its locks), SQLite
otherwise. The cluster listens on a free loopback port with a random password, never syncs to
disk, and is stopped and deleted when the round trip ends, whatever happened.

initdb and postgres refuse to run as root: as root the cluster runs as ``nobody``
(``setpriv``); where that cannot be done (no ``setpriv``, Windows), SQLite is used.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deploytools.errors import OperatorError
from deploytools.hosts.local import LocalHost

USER = "deploytools"
UNPRIVILEGED = "nobody"
TIMEOUT = 60.0  # initdb, start and stop each
FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


@dataclass(frozen=True)
class Database:
    url: str
    kind: str  # as the gate says it: "PostgreSQL", "SQLite"
    path: Path | None = None  # SQLite's file


def server_bindir() -> Path | None:
    """Where initdb and pg_ctl are: the newest Debian cluster's, else initdb's on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


@contextmanager
def throwaway(scratch: Path) -> Iterator[Database]:
    """A database for one round trip; ``scratch`` is the caller's temporary directory."""
    bindir, prefix = server_bindir(), _as_unprivileged()
    if bindir is None or prefix is None:
        path = scratch / "roundtrip.sqlite3"
        yield Database(f"sqlite:///{path}", "SQLite", path)
        return
    with _postgres(bindir, scratch, prefix) as url:
        yield Database(url, "PostgreSQL")


@contextmanager
def _postgres(bindir: Path, scratch: Path, prefix: list[str]) -> Iterator[str]:
    home = scratch / "pg"
    home.mkdir()
    password = secrets.token_urlsafe(18)
    pwfile = home / "pwfile"
    pwfile.write_text(password + "\n", encoding="utf-8")
    pwfile.chmod(0o600)
    if prefix:  # the server's own user must reach and own its directory
        scratch.chmod(0o711)
        for path in (home, pwfile):
            shutil.chown(path, UNPRIVILEGED, _group(UNPRIVILEGED))
    data, host = home / "data", LocalHost()
    _run(host, [*prefix, str(bindir / "initdb"), f"--pgdata={data}", f"--username={USER}",
                f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8", "--no-locale",
                "--no-sync", "--no-instructions"], "initdb")  # fmt: skip
    port = _free_port()
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={home} {FAST}"
    pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", str(int(TIMEOUT))]
    _run(host, [*pg_ctl, "-l", str(home / "log"), "-o", options, "start"], "pg_ctl start")
    try:
        yield f"postgresql://{USER}:{password}@127.0.0.1:{port}/postgres"
    finally:
        host.run([*pg_ctl, "-m", "immediate", "stop"], check=False, timeout=TIMEOUT)


def _run(host: LocalHost, argv: list[str], what: str) -> None:
    done = host.run(argv, check=False, timeout=TIMEOUT)
    if not done.ok:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise OperatorError(
            f"the throwaway PostgreSQL did not start ({what}: "
            f"{said[-1] if said else done.returncode})",
            "check the PostgreSQL server install (initdb, pg_ctl), or run where it is absent "
            "(SQLite is used then)",
        )


def _as_unprivileged() -> list[str] | None:
    """The argv prefix that runs the server as a user it accepts: none needed when not root;
    ``setpriv`` to ``nobody`` as root; None when neither can be done."""
    geteuid = getattr(os, "geteuid", None)
    if geteuid is None:  # Windows
        return None
    if geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    import pwd

    try:
        user = pwd.getpwnam(UNPRIVILEGED)
    except KeyError:
        return None
    ids = [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}"]
    return [setpriv, *ids, "--clear-groups", "--"]


def _group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _version(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())
