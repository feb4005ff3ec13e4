"""Run alembic migrations through its Python API, safely.

- One transaction for the whole run (PostgreSQL has transactional DDL): if any revision fails,
  the database stays at the revision it had before, and the error names the failing revision.
  The transaction belongs to alembic's migration context, not to us: env.py opens it with
  ``context.begin_transaction()`` around ``run_migrations()`` (alembic's template does, and
  ``transaction_per_migration`` stays False), so that a revision can step out of it with
  ``op.get_context().autocommit_block()`` (``CREATE INDEX CONCURRENTLY``): the block commits
  what ran before it, runs in autocommit, and a new transaction carries on after it. Keep such
  a block in a revision of its own: a failure after it leaves the revisions before it applied.
  alembic runs SQLite (no transactional DDL in its eyes) one transaction per revision.
- ``lock_timeout`` / ``statement_timeout`` from config, set for the session before alembic
  starts: a migration waiting behind a long transaction fails fast instead of queueing every
  query of the app behind its lock, inside an autocommit block too; a lock timeout is retried
  (``lock_retries`` times, with backoff) from the revision the database is then at.
- Downgrades refuse to pass a revision that declares itself irreversible.

An env.py run in a process of its own (a release's runtime) can keep all of this without any
code of ours: the same ``begin_transaction()``, and the timeouts through libpq's ``PGOPTIONS``
(``-c lock_timeout=... -c statement_timeout=...``), which every connection it opens reads.

The URL comes from the env file; ``url=`` overrides it (e.g. a tunnel to a remote database).
"""

from __future__ import annotations

import io
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from deploytools.config import EnvironmentSettings
from deploytools.db.database import Database, open_database
from deploytools.db.revisions import (
    Revision,
    alembic_config,
    between,
    resolve,
    script_directory,
)
from deploytools.errors import DeployFailure, OperatorError
from deploytools.journal import Journal
from deploytools.redact import Redactor
from deploytools.ui import Ui

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory
    from sqlalchemy import Connection, Engine

LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout
CONNECT_TIMEOUT = 10


@dataclass(frozen=True)
class MigrationResult:
    """What a migration run did: ``before`` is where an undo would go back to."""

    before: str | None
    after: str | None
    applied: list[str]  # revisions applied (upgrade) or undone (downgrade), in order


def load_modules(settings: EnvironmentSettings) -> None:
    """Import what a migration of this database runs on: alembic, SQLAlchemy and the driver.

    About half a second of a deploy's migrate step; a pipeline does it while the step before
    waits on its command (``Step.prepare``). Touches neither the database nor the env file's
    secrets beyond the URL's scheme.
    """
    from alembic import command  # noqa: F401
    from alembic.runtime.migration import MigrationContext  # noqa: F401
    from sqlalchemy.engine import make_url

    make_url(open_database(settings).sqlalchemy_url).get_dialect().import_dbapi()


def current_revision(settings: EnvironmentSettings, *, url: str | None = None) -> str | None:
    """The database's alembic revision (None: never migrated)."""
    database = open_database(settings, url=url)
    if database.path is not None and not database.path.exists():
        return None  # a SQLite file not made yet: connecting would make it
    with _connection(database) as conn:
        return _current(conn)


def pending_revisions(settings: EnvironmentSettings, *, url: str | None = None) -> list[str]:
    """Revisions not yet applied, oldest first."""
    return [
        r.id
        for r in between(script_directory(settings), "heads", current_revision(settings, url=url))
    ]


def upgrade(
    settings: EnvironmentSettings,
    ui: Ui,
    target: str = "head",
    *,
    url: str | None = None,
    journal: Journal | None = None,
) -> MigrationResult:
    """Apply every revision up to ``target`` in one transaction (``alembic upgrade``)."""
    return _migrate(settings, ui, "upgrade", target, url=url, journal=journal)


def downgrade(
    settings: EnvironmentSettings,
    ui: Ui,
    target: str,
    *,
    url: str | None = None,
    journal: Journal | None = None,
) -> MigrationResult:
    """Undo revisions down to ``target`` (kept); refused past an irreversible revision."""
    return _migrate(settings, ui, "downgrade", target, url=url, journal=journal)


def downgrade_plan(
    settings: EnvironmentSettings, target: str, *, url: str | None = None
) -> tuple[str | None, list[Revision]]:
    """``(current revision, revisions a downgrade to target would undo, newest first)``;
    an unknown target or an irreversible revision on the way is refused here."""
    script = script_directory(settings)
    target = resolve(script, target)
    current = current_revision(settings, url=url)
    return current, list(reversed(_plan(script, "downgrade", current, target)))


def offline_sql(
    settings: EnvironmentSettings,
    *,
    start: str | None = None,
    end: str = "head",
    url: str | None = None,
    dialect: str | None = None,
) -> str:
    """The SQL of revisions after ``start`` up to ``end``, generated without touching the database.

    ``start=None`` reads the database's current revision (one read, no change); "base" means
    from the beginning. ``dialect`` (postgresql, sqlite) avoids reading the env file at all.
    A revision that cannot run without a database (it reads rows through ``op.get_bind()``)
    is an operator error naming it: the lint, which reads this SQL, cannot vouch for it.
    """
    from alembic import command

    script = script_directory(settings)
    end = resolve(script, end)
    if start is None:
        start = current_revision(settings, url=url) or "base"
    start = resolve(script, start)
    if not between(script, end, start):
        return ""
    if dialect is None:
        dialect = open_database(settings, url=url).engine
    buffer = io.StringIO()
    config = alembic_config(settings, url=f"{dialect}://")
    config.output_buffer = buffer
    try:
        command.upgrade(config, f"{start}:{end}" if start != "base" else end, sql=True)
    except Exception as exc:
        failing = _failing_revision(exc, script)
        raise OperatorError(
            f"{f'revision {failing}' if failing else 'env.py'} cannot be rendered as SQL "
            f"offline (alembic --sql): {_reason(exc)}",
            "read rows or call services only online (`if not context.is_offline_mode():`); "
            "`invoke db.migrate --sql` shows the SQL",
        ) from None
    return buffer.getvalue()


def _migrate(
    settings: EnvironmentSettings,
    ui: Ui,
    direction: Literal["upgrade", "downgrade"],
    target: str,
    *,
    url: str | None,
    journal: Journal | None,
) -> MigrationResult:
    script = script_directory(settings)
    target = resolve(script, target)
    database = open_database(settings, ui.redact, url=url, say=ui.info)
    with _connection(database) as conn:
        before = _current(conn)
    steps = _plan(script, direction, before, target)
    if not steps:
        ui.info(f"nothing to {direction}: the database is at {before or 'base'}")
        return MigrationResult(before, before, [])
    names = ", ".join(f"{r.id} ({r.message})" if r.message else r.id for r in steps)
    ui.info(f"{direction} {database.shown} from {before or 'base'} to {target}: {names}")
    record = {"database": database.shown, "before": before, "target": target}
    if journal is not None:
        journal.append(f"db.{direction}", **record, result="started")
    try:
        after = _run_with_retries(settings, ui, database, script, direction, target)
    except BaseException as exc:
        if journal is not None:
            journal.append(f"db.{direction}", **record, result="failed", error=str(exc))
        raise
    applied = [r.id for r in (steps if direction == "upgrade" else reversed(steps))]
    if journal is not None:
        journal.append(f"db.{direction}", **record, result="ok", after=after, applied=applied)
    ui.success(f"{direction} done: {database.shown} is at {after or 'base'}")
    return MigrationResult(before, after, applied)


def _plan(
    script: ScriptDirectory, direction: str, current: str | None, target: str
) -> list[Revision]:
    """Revisions the run would touch, oldest first; refuses an impossible or irreversible path."""
    if direction == "upgrade":
        return between(script, target, current)
    lower = None if target == "base" else target
    steps = between(script, current, lower)
    blocked = [r for r in steps if r.irreversible]
    if blocked:
        why = "; ".join(f"{r.id}: {r.irreversible}" for r in blocked)
        raise OperatorError(
            f"cannot downgrade from {current} to {target}: irreversible revision(s) on the way"
            f" ({why})",
            "restore a backup taken before them instead (`invoke db.backups`, `invoke db.restore`)",
        )
    return steps


def _run_with_retries(
    settings: EnvironmentSettings,
    ui: Ui,
    database: Database,
    script: ScriptDirectory,
    direction: str,
    target: str,
) -> str | None:
    import stamina
    from alembic import command

    attempts = settings.database.lock_retries + 1
    run = getattr(command, direction)
    try:
        for attempt in stamina.retry_context(
            on=_is_lock_timeout, attempts=attempts, timeout=None, wait_initial=0.2, wait_max=5.0
        ):
            with attempt:
                if attempt.num > 1:
                    ui.warn(f"lock timeout: attempt {attempt.num} of {attempts}")
                with _connection(database) as conn:
                    _set_timeouts(conn, settings, database)
                    run(alembic_config(settings, connection=conn), target)
                    if conn.in_transaction():  # an env.py without begin_transaction()
                        conn.commit()
                    after = _current(conn)
    except Exception as exc:
        raise _explain(exc, settings, database, script, direction, attempts, ui.redact) from None
    return after


def _explain(
    exc: Exception,
    settings: EnvironmentSettings,
    database: Database,
    script: ScriptDirectory,
    direction: str,
    attempts: int,
    redact: Redactor,
) -> Exception:
    """One operator-facing error: which revision failed, why, and where the database is now."""
    from alembic.util import CommandError

    if isinstance(exc, CommandError):  # alembic refused before running anything
        return OperatorError(f"alembic: {exc}", "check the revision with `invoke db.history`")
    failing = _failing_revision(exc, script)
    try:
        with _connection(database) as conn:
            now = _current(conn) or "base"
    except DeployFailure:
        now = "unknown (the database cannot be reached)"
    why = _reason(exc)
    if _is_lock_timeout(exc):
        why = (
            f"lock timeout ({settings.database.lock_timeout_ms} ms) on every one of {attempts} "
            f"attempt(s): another session holds a lock the migration needs ({why})"
        )
    where = f"revision {failing}" if failing else f"the {direction}"
    return DeployFailure(
        redact(f"{direction} failed in {where}: {why}\nthe database is at revision {now}"),
        "fix the migration (or wait for the lock holder) and run `invoke db.migrate` again",
    )


def _failing_revision(exc: BaseException, script: ScriptDirectory) -> str | None:
    """The revision whose module is deepest in the traceback (its upgrade/downgrade raised)."""
    by_path = {str(s.path): s.revision for s in script.walk_revisions()}
    found = None
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        for frame in traceback.extract_tb(error.__traceback__):
            found = by_path.get(frame.filename, found)
        error = error.__cause__ or error.__context__
    return found


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # sqlalchemy.exc.DBAPIError: the driver's own message
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_lock_timeout(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) == LOCK_NOT_AVAILABLE


def _set_timeouts(conn: Connection, settings: EnvironmentSettings, database: Database) -> None:
    """For the session, not a transaction: they hold in an autocommit block too. The connection
    is handed over outside any transaction, for alembic's context to open its own."""
    if database.engine != "postgresql":
        return
    conf = settings.database
    conn.exec_driver_sql(f"SET lock_timeout = {int(conf.lock_timeout_ms)}")
    conn.exec_driver_sql(f"SET statement_timeout = {int(conf.statement_timeout_ms)}")
    conn.commit()


def _current(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(sorted(heads)) or None


def _engine(database: Database) -> Engine:
    from sqlalchemy import create_engine, event, pool

    options: dict[str, Any] = {"poolclass": pool.NullPool}
    if database.engine == "postgresql":
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
        return create_engine(database.sqlalchemy_url, **options)
    if database.path is not None:
        database.path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(database.sqlalchemy_url, **options)
    # pysqlite opens a transaction only before INSERT/UPDATE/DELETE: the DDL of a migration
    # that fails later would stay. SQLAlchemy's recipe: the driver never begins, we always do.
    event.listen(engine, "connect", _sqlite_no_implicit_transactions)
    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
    return engine


def _sqlite_no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


@contextmanager
def _connection(database: Database) -> Iterator[Connection]:
    """A connection of its own (no pool), closed and its engine disposed at the end."""
    from sqlalchemy.exc import OperationalError

    engine = _engine(database)
    try:
        try:
            conn = engine.connect()
        except OperationalError as exc:
            raise DeployFailure(
                f"cannot connect to the database {database.shown}: {_reason(exc)}",
                "check that the server is up and the URL's host, port, user and password are right",
            ) from None
        with conn:
            yield conn
    finally:
        engine.dispose()
