"""PostgreSQL client argv builders: pg_dump, pg_restore, psql, also inside a compose service.

The connection travels as a libpq URI *without* its password (``--dbname=postgresql://u@h/db``),
so every query parameter (sslmode, ...) keeps working; ``deploytools.dburl`` makes it from the
app's URL. The password never goes in an argv that ``ps`` or a log could show: it goes in
``PGPASSWORD`` through a host's ``secret_env`` (the client's environment, readable only by its
own user and root, like a 0600 file, and gone with the process), and inside a compose service
``-e PGPASSWORD`` names the variable only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Argv = list[str]
DumpFormat = Literal["custom", "directory"]


@dataclass(frozen=True)
class Conn:
    """Where to connect (``deploytools.dburl.normalise`` makes one from an app's URL): ``uri``
    is safe to show and to put in an argv; ``password`` is not."""

    uri: str
    dbname: str
    password: str | None = None
    options: str | None = None  # the URL's libpq ``options`` (server settings: -c NAME=VALUE)

    def env(self, *, lock_timeout_ms: int | None = None) -> dict[str, str]:
        """Environment for a client run that is not secret: session settings via PGOPTIONS,
        the URL's first, ours after them (a URI's ``options`` would override PGOPTIONS)."""
        ours = f"-c lock_timeout={lock_timeout_ms}" if lock_timeout_ms else ""
        merged = " ".join(part for part in (self.options, ours) if part)
        return {"PGOPTIONS": merged} if merged else {}

    def secret_env(self) -> dict[str, str]:
        """The password for a host's ``secret_env``: never on a command line, never in a file."""
        return {"PGPASSWORD": self.password} if self.password else {}


def dump(
    conn: Conn,
    target: str,
    *,
    fmt: DumpFormat = "custom",
    jobs: int = 1,
    lock_wait_timeout_ms: int = 0,
    program: str = "pg_dump",
) -> Argv:
    """Dump to ``target`` (a file for custom format, a new directory for directory format)."""
    argv = [program, f"--format={fmt}", f"--file={target}"]
    if fmt == "directory" and jobs > 1:
        argv.append(f"--jobs={jobs}")
    if lock_wait_timeout_ms:
        argv.append(f"--lock-wait-timeout={lock_wait_timeout_ms}")
    return [*argv, "--no-password", f"--dbname={conn.uri}"]


def read_archive(archive: str, *, program: str = "pg_restore", devnull: str = "/dev/null") -> Argv:
    """Read the *whole* archive, data included, writing the SQL nowhere: a truncated or
    corrupt archive fails here, whereas ``pg_restore --list`` only reads the table of contents."""
    return [program, f"--file={devnull}", archive]


def restore(conn: Conn, archive: str, *, program: str = "pg_restore") -> Argv:
    """Replace the archived objects in one transaction: on any error nothing has changed."""
    return [
        program,
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        "--no-password",
        f"--dbname={conn.uri}",
        archive,
    ]


def psql(conn: Conn, *, program: str = "psql") -> Argv:
    """Run the script given on stdin (psql meta-commands allowed), stopping at the first error;
    rows come back one per line, fields separated by ``|``."""
    return [
        program,
        "--no-psqlrc",
        "--no-password",
        "--quiet",
        "--tuples-only",
        "--no-align",
        "--field-separator=|",
        "--set=ON_ERROR_STOP=1",
        "--file=-",
        f"--dbname={conn.uri}",
    ]


def in_service(
    compose: Sequence[str], service: str, argv: Sequence[str], env_names: Sequence[str] = ()
) -> Argv:
    """Run a client argv inside the compose service's container (``docker compose exec -T``).

    ``-e NAME`` names a variable only: compose copies its value from the environment the
    command runs with (``env`` and ``secret_env``), so the password stays out of the argv here.
    """
    env = [word for name in env_names for word in ("-e", name)]
    return [*compose, "exec", "-T", *env, service, *argv]


def copy_from_service(compose: Sequence[str], service: str, source: str, target: str) -> Argv:
    return [*compose, "cp", f"{service}:{source}", target]


def copy_to_service(compose: Sequence[str], service: str, source: str, target: str) -> Argv:
    return [*compose, "cp", source, f"{service}:{target}"]


def remove_in_service(compose: Sequence[str], service: str, path: str) -> Argv:
    return [*compose, "exec", "-T", service, "rm", "-rf", "--", path]
