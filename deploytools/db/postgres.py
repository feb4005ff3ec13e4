"""PostgreSQL through its own client tools (pg_dump, pg_restore, psql) run on a ``Host``.

With ``dump_via_service`` the tools run inside the compose database service instead (for hosts
without a PostgreSQL client): archives then travel with ``docker compose cp``. Either way the
password reaches a client only through the host's ``secret_env``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from deploytools.commands import postgres as pg
from deploytools.config import EnvironmentSettings
from deploytools.db.database import Database
from deploytools.db.facts import Facts
from deploytools.errors import CommandError, DeployFailure, OperatorError
from deploytools.hosts.base import Host, Result

# The alembic revisions if the table exists (psql 9.6+'s \gexec runs the query only then: a
# plain query on a missing table would fail).
REVISION_SCRIPT = """\
SELECT 'SELECT version_num FROM alembic_version ORDER BY version_num'
 WHERE to_regclass('alembic_version') IS NOT NULL \\gexec
"""
# One psql call (each costs a connection, ~0.07 s): the facts row, then the revisions.
FACTS_SCRIPT = (
    "SELECT current_database(), current_setting('server_version'), "
    "pg_database_size(current_database());\n" + REVISION_SCRIPT
)
SERVICE_TMP = "/tmp"
# libpq's words for a connection option it does not know, in a URI or a conninfo string.
OPTION_REFUSED = ("invalid URI query parameter", "invalid connection option")


class PostgresEngine:
    def __init__(
        self,
        settings: EnvironmentSettings,
        host: Host,
        database: Database,
        compose: Sequence[str] = (),
    ) -> None:
        assert database.conn is not None
        self.settings = settings
        self.conf = settings.database
        self.host = host
        self.database = database
        self.conn = database.conn
        self.format = self.conf.format
        self.is_directory = self.format == "directory"
        self.suffix = ".dir" if self.is_directory else ".dump"
        self.service = self.conf.dump_via_service
        self.compose = list(compose)

    @property
    def method(self) -> str:
        how = "pg_dump " + (
            f"directory format with -j {self.conf.jobs}" if self.is_directory else "custom format"
        )
        return how + (f" in compose service {self.service}" if self.service else "")

    def facts(self) -> Facts:
        first, *revisions = self._query(FACTS_SCRIPT).splitlines() or [""]
        row = first.split("|")
        if len(row) != 3 or not row[2].isdigit():
            raise DeployFailure(f"unexpected answer from psql about {self.database.shown}: {row!r}")
        return Facts(row[0], row[1], int(row[2]), ",".join(revisions) or None)

    def revision(self) -> str | None:
        return ",".join(self._query(REVISION_SCRIPT).splitlines()) or None

    def dump(self, target: str) -> None:
        with self._in_service_path(target, copy_in=False, copy_out=True) as where:
            argv = pg.dump(
                self.conn,
                where,
                fmt=self.conf.format,
                jobs=self.conf.jobs,
                lock_wait_timeout_ms=self.conf.lock_timeout_ms,
            )
            self._client(argv, "pg_dump")

    def verify(self, archive: str) -> None:
        with self._in_service_path(archive, copy_in=True, copy_out=False) as where:
            what = "verification (pg_restore reading the whole archive)"
            self._client(pg.read_archive(where), what, connects=False)

    def restore(self, archive: str) -> None:
        with self._in_service_path(archive, copy_in=True, copy_out=False) as where:
            self._client(pg.restore(self.conn, where), "pg_restore", lock_timeout=True)

    def _query(self, script: str) -> str:
        try:
            return self._run(pg.psql(self.conn), stdin=script).stdout.strip()
        except CommandError as exc:
            if any(refusal in exc.output for refusal in OPTION_REFUSED):
                key = self.conf.url_key
                raise OperatorError(
                    f"the PostgreSQL client tools on {self.host.name} do not know an option of"
                    f" {key} that deploytools' own libpq takes:\n" + _tail(exc.output),
                    f"remove that option from {key}, or install newer PostgreSQL client tools"
                    f" (psql, pg_dump, pg_restore) on {self.host.name}",
                ) from None
            raise DeployFailure(
                f"cannot query the database {self.database.shown} on {self.host.name}:\n"
                + _tail(exc.output),
                "check that the server is up and the URL's host, port, user and password are right",
            ) from None

    def _client(
        self, argv: list[str], what: str, *, lock_timeout: bool = False, connects: bool = True
    ) -> None:
        try:
            self._run(argv, lock_timeout=lock_timeout, connects=connects)
        except CommandError as exc:
            status = "timed out" if exc.returncode is None else f"failed (exit {exc.returncode})"
            raise DeployFailure(
                f"{what} {status} on {self.host.name}:\n{_tail(exc.output)}"
            ) from None

    def _run(
        self,
        argv: list[str],
        *,
        lock_timeout: bool = False,
        connects: bool = True,
        stdin: str | None = None,
    ) -> Result:
        """Run a client; the password goes only to one that ``connects`` (reading an archive
        needs none), and only through ``secret_env``."""
        lock_ms = self.conf.lock_timeout_ms if lock_timeout else None
        env = self.conn.env(lock_timeout_ms=lock_ms)
        secret_env = self.conn.secret_env() if connects else {}
        if self.service:
            argv = pg.in_service(self.compose, self.service, argv, [*env, *secret_env])
        return self.host.run(
            argv, env=env, secret_env=secret_env, timeout=self.conf.dump_timeout, stdin=stdin
        )

    @contextmanager
    def _in_service_path(self, path: str, *, copy_in: bool, copy_out: bool) -> Iterator[str]:
        """``path`` itself, or a scratch copy of it inside the service's container."""
        if not self.service:
            yield path
            return
        inside = posixpath.join(SERVICE_TMP, "deploytools-" + posixpath.basename(path).lstrip("."))
        compose, service = self.compose, self.service
        try:
            if copy_in:
                self.host.run(pg.copy_to_service(compose, service, path, inside))
            yield inside
            if copy_out:
                self.host.run(pg.copy_from_service(compose, service, inside, path))
        finally:
            self.host.run(pg.remove_in_service(compose, service, inside), check=False)


def _tail(output: str, lines: int = 8) -> str:
    return "\n".join(output.strip().splitlines()[-lines:])
