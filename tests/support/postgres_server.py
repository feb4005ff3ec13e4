"""A throwaway PostgreSQL cluster on a free loopback port, with password (scram) auth over TCP.

initdb and postgres refuse to run as root, so as root both run as ``parts.TEST_USER``
(``setpriv``); durability is switched off because the cluster dies with the test session.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
from urllib.parse import quote

from tests.support import parts, procs
from tests.support.require import require

FAST_UNSAFE = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def mixed_password() -> str:
    """A random password with all four kinds of character. A bare ``token_urlsafe(18)`` has
    no digit and no symbol about once in 150 draws, and tests put this password in env files
    whose rules (the example's) refuse fewer than three kinds: a CI run failed on it."""
    return secrets.token_urlsafe(18) + "-Kq7"


class PostgresServer(procs.TempServer):
    """``with PostgresServer() as pg:`` a running cluster; stopped and deleted on exit."""

    host = "127.0.0.1"
    user = "deploytools"
    _stop_signal = signal.SIGINT  # fast shutdown: disconnect clients instead of waiting for them

    def __init__(self) -> None:
        bindir = parts.pg_bindir()
        require(bindir is not None, "PostgreSQL server (initdb)", parts.PROVISION)
        assert bindir is not None
        self.bindir = bindir
        self._as_user = _unprivileged_prefix()
        self.password = mixed_password()
        self.port = procs.free_port()
        super().__init__("deploytools-pg-")
        self._data = self._dir / "data"
        self._log = self._dir / "postgres.log"

    def _prepare(self) -> None:
        pwfile = self._dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self._as_user:
            for path in (self._dir, pwfile):
                shutil.chown(path, parts.TEST_USER, parts.TEST_USER)
        argv = [
            *self._as_user,
            str(self.bindir / "initdb"),
            f"--pgdata={self._data}",
            f"--username={self.user}",
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        ]
        try:
            done = subprocess.run(
                argv, cwd=self._dir, capture_output=True, text=True, timeout=120, check=False
            )
        finally:
            pwfile.unlink()
        if done.returncode != 0:
            raise procs.ServerError(f"initdb exited {done.returncode}:\n{done.stderr[-2000:]}")

    def start(self) -> None:
        """Start (or restart after ``stop``) the server on the same port and data."""
        if self._running():
            return
        argv = [
            *self._as_user,
            str(self.bindir / "postgres"),
            "-D",
            str(self._data),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            f"unix_socket_directories={self._dir}",
        ]
        for setting in FAST_UNSAFE:
            argv += ["-c", setting]
        self._proc = procs.start(argv, self._log, cwd=self._dir)
        procs.wait_until(self._ready, f"postgres on port {self.port}", self._proc, self._log)

    def _ready(self) -> bool:
        """postmaster.pid's 8th line turns to ``ready`` once connections are accepted."""
        try:
            lines = (self._data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready"

    def url(self, dbname: str) -> str:
        password = quote(self.password, safe="")
        return f"postgresql://{self.user}:{password}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database (an existing one is dropped first); returns its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def hand_over(self, dbname: str, role: str, password: str) -> None:
        """Create the login ``role`` with ``password`` and make it the owner of ``dbname``."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
            conn.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                    sql.Identifier(dbname), sql.Identifier(role)
                )
            )


def _unprivileged_prefix() -> list[str]:
    """As root, run initdb/postgres as ``parts.TEST_USER``; as anyone else, as ourselves."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(parts.TEST_USER)
    except KeyError:
        require(False, f"system user {parts.TEST_USER!r}", parts.PROVISION)
    user = parts.TEST_USER
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]


def alembic_revision(url: str) -> str | None:
    """PostgreSQL's own answer: the alembic_version row, None without the table."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,):
            return None
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        return ",".join(sorted(r[0] for r in rows)) or None
