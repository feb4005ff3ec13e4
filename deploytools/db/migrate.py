"""Run alembic migrations where the app runs, then check where the database really is.

The app's own ``env.py`` decides how it connects, and the most common one reads the URL from
the environment (``os.environ["DATABASE_URL"]``): so alembic runs in the release's runtime
(``Runtime.run_alembic``: the app's interpreter in the release's directory, or a one-off
container of the release's image), with the env file's values in its environment, never on
its command line. deploytools imports none of the app's code or drivers for it.

What alembic says is not taken for it: deploytools reads the database's revision itself
(``alembic_version``, as the backup facts do: ``Engine.revision``) before, and after every
upgrade or downgrade checks that it is the one asked for. An env.py that migrated another
database (a SQLite default) fails loudly there.

- One transaction for the whole run is env.py's: alembic's template opens it with
  ``context.begin_transaction()`` around ``run_migrations()`` (``transaction_per_migration``
  False), so a failure leaves the revision the database had; a revision can step out with
  ``op.get_context().autocommit_block()`` (``CREATE INDEX CONCURRENTLY``).
- ``lock_timeout`` / ``statement_timeout`` from config reach every connection env.py opens
  through libpq's ``PGOPTIONS``: a migration waiting behind a long transaction fails fast; a
  lock timeout is retried (``lock_retries`` times, with backoff).
- Downgrades refuse to pass a revision that declares itself irreversible.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from deploytools.commands import alembic
from deploytools.config import EnvironmentSettings
from deploytools.db.database import open_database
from deploytools.db.location import migrations_dir, release_ini
from deploytools.db.revisions import Revision, between, resolve, script_directory
from deploytools.errors import CommandError, DeployFailure, OperatorError
from deploytools.hosts.base import Host, Result
from deploytools.redact import Redactor
from deploytools.site.journal import Journal
from deploytools.ui import Ui

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

    from deploytools.runtime.base import Runtime

# What PostgreSQL (55P03) and its drivers say when lock_timeout ends a statement.
LOCK_TIMEOUT = re.compile(r"lock timeout|LockNotAvailable|55P03")
TRACEBACK_FILE = re.compile(r'File "([^"]+)"')
# The line that names what went wrong: ``psycopg.errors.UndefinedTable: ...``, ``FAILED: ...``.
RAISED = re.compile(r"^(?:[\w.]*(?:Error|Exception|Timeout|NotAvailable)\w*|FAILED): ")


@dataclass(frozen=True)
class MigrationResult:
    """What a migration run did: ``before`` is where an undo would go back to."""

    before: str | None
    after: str | None
    applied: list[str]  # revisions applied (upgrade) or undone (downgrade), in order


@dataclass(frozen=True)
class Where:
    """Where a migration runs: the host of the database's tools, the runtime and release of
    the app's code (None: the app as it stands; ``Runtime.run_alembic``)."""

    host: Host
    runtime: Runtime
    release: str | None = None


def where(
    settings: EnvironmentSettings,
    host: Host | None = None,
    runtime: Runtime | None = None,
    release: str | None = None,
    redactor: Redactor | None = None,
) -> Where:
    """Defaults: this machine, the environment's runtime on it (the env file read through
    ``redactor`` when given)."""
    from deploytools.hosts.local import LocalHost
    from deploytools.runtime import runtime_for

    host = host or LocalHost()
    if runtime is None:
        runtime = runtime_for(settings, host, _env_values(settings, redactor))
    return Where(host, runtime, release)


def current_revision(
    settings: EnvironmentSettings, host: Host | None = None, redactor: Redactor | None = None
) -> str | None:
    """The database's alembic revision, read by deploytools itself (None: never migrated)."""
    from deploytools.db.engine import engine_for
    from deploytools.hosts.local import LocalHost

    host = host or LocalHost()
    return engine_for(settings, host, open_database(settings, redactor)).revision()


def pending_revisions(settings: EnvironmentSettings, host: Host | None = None) -> list[str]:
    """Revisions not yet applied, oldest first."""
    now = current_revision(settings, host)
    return [r.id for r in between(script_directory(settings), "heads", now)]


def upgrade(
    settings: EnvironmentSettings,
    ui: Ui,
    target: str = "head",
    *,
    at: Where | None = None,
    journal: Journal | None = None,
) -> MigrationResult:
    """Apply every revision up to ``target`` (``alembic upgrade``), then check the database."""
    return _migrate(settings, ui, "upgrade", target, at or where(settings), journal)


def downgrade(
    settings: EnvironmentSettings,
    ui: Ui,
    target: str,
    *,
    at: Where | None = None,
    journal: Journal | None = None,
) -> MigrationResult:
    """Undo revisions down to ``target`` (kept); refused past an irreversible revision."""
    return _migrate(settings, ui, "downgrade", target, at or where(settings), journal)


def downgrade_plan(
    settings: EnvironmentSettings, target: str, host: Host | None = None
) -> tuple[str | None, list[Revision]]:
    """``(current revision, revisions a downgrade to target would undo, newest first)``;
    an unknown target or an irreversible revision on the way is refused here."""
    script = script_directory(settings)
    target = resolve(script, target)
    current = current_revision(settings, host)
    return current, list(reversed(_plan(script, "downgrade", current, target)))


def offline_sql(
    settings: EnvironmentSettings,
    *,
    start: str | None = None,
    end: str = "head",
    host: Host | None = None,
    dialect: str | None = None,
    redactor: Redactor | None = None,
    at: Where | None = None,
) -> str:
    """The SQL of revisions after ``start`` up to ``end`` (``alembic upgrade --sql``), changing
    nothing; env.py picks the dialect from the URL as it does online.

    Rendered by the app's alembic where ``at`` says (a deploy: the release it has just built,
    in its runtime). Without ``at``: ``dialect`` (postgresql, sqlite) stands for the URL when
    there is no env file, on the process runtime's interpreter and this machine's checkout (the
    verify gate: no database, no engine); else the checkout as it stands is rendered in the
    environment's runtime (``checkout``: for compose, an image built for the purpose).
    ``start=None`` reads the database's revision on ``host``. A revision that cannot be
    rendered offline is an operator error naming it.
    """
    script = script_directory(settings)
    end = resolve(script, end)
    if start is None:
        start = current_revision(settings, host, redactor) or "base"
    start = resolve(script, start)
    if not between(script, end, start):
        return ""
    span = f"{start}:{end}" if start != "base" else end
    args = alembic.upgrade(release_ini(settings), span, sql=True)
    if at is not None:
        done = at.runtime.run_alembic(at.release, args, {})
    elif dialect is not None:
        from deploytools.hosts.local import LocalHost
        from deploytools.runtime.process import ProcessRuntime

        url = {settings.database.url_key: f"{dialect}://"}
        done = ProcessRuntime(settings, LocalHost(), {}).run_alembic(None, args, url)
    else:
        with checkout(settings, host, redactor) as here:
            done = here.runtime.run_alembic(here.release, args, {})
    if not done.ok:
        failing = _failing_revision(done, script)
        raise OperatorError(
            f"{f'revision {failing}' if failing else 'env.py'} cannot be rendered as SQL "
            f"offline (alembic --sql): {_reason(done)}",
            "read rows or call services only online (`if not context.is_offline_mode():`); "
            "`invoke db.migrate --sql` shows the SQL",
        )
    return done.stdout


@contextmanager
def checkout(
    settings: EnvironmentSettings, host: Host | None = None, redactor: Redactor | None = None
) -> Iterator[Where]:
    """Where the checkout's code runs alembic outside a deploy (``db.lint``, ``migrate --sql``).

    Process runtime: the app's interpreter on this machine's checkout, with the env file's
    values. Compose runtime: nothing of the app on this machine; the images are built from the
    checkout on ``host`` (the primary) as the deploy builds them, under a scratch release id
    (``sql-<env>-<commit>-<random>``: a concurrent run never removes this one's; the layers
    are in Docker's build cache for the deploy of the same commit), and that tag is removed
    afterwards (an image a release's tag also names stays).
    """
    from deploytools.hosts.local import LocalHost

    values = _env_values(settings, redactor)  # the redactor learns the secrets either way
    if settings.runtime != "compose":
        from deploytools.runtime.process import ProcessRuntime

        yield Where(host or LocalHost(), ProcessRuntime(settings, LocalHost(), values))
        return
    from deploytools.runtime.compose import ComposeRuntime

    host = host or LocalHost()
    runtime = ComposeRuntime(settings, host)
    runtime.check_migrations()  # a service missing from the compose files: before any build
    scratch = _scratch_release(settings)
    try:
        try:
            runtime.build(scratch)
        except CommandError as exc:
            raise OperatorError(
                "the images to render the migrations' SQL in did not build (docker compose "
                f"build, as a deploy builds them): {exc.problem}",
                "fix the build where compose says above (`docker compose build` shows it)",
            ) from None
        yield Where(host, runtime, scratch)
    finally:
        runtime.remove_release(scratch)  # a build cut short may have tagged images too


def _scratch_release(settings: EnvironmentSettings) -> str:
    """``sql-<env>-<short commit>-<random>``: a name no deploy gives (``release-…``)."""
    import secrets

    from deploytools.commands import git
    from deploytools.hosts.local import LocalHost

    done = LocalHost().run(git.rev_parse(short=True), cwd=str(settings.root), check=False)
    commit = done.stdout.strip() if done.ok else "nocommit"
    return f"sql-{settings.name}-{commit}-{secrets.token_hex(3)}"


def _env_values(settings: EnvironmentSettings, redactor: Redactor | None) -> dict[str, str]:
    """The env file's values, through the redactor when there is one (it learns the secrets)."""
    if redactor is not None:
        from deploytools.env.validate import learned_values

        return learned_values(settings, redactor)
    from deploytools.env.file import load_values

    return load_values(settings.path(settings.env_file))


def _migrate(
    settings: EnvironmentSettings,
    ui: Ui,
    direction: Literal["upgrade", "downgrade"],
    target: str,
    at: Where,
    journal: Journal | None,
) -> MigrationResult:
    script = script_directory(settings)
    target = resolve(script, target)
    database = open_database(settings, ui.redact, say=ui.info)
    before = current_revision(settings, at.host, ui.redact)
    steps = _plan(script, direction, before, target)
    if not steps:
        ui.info(f"nothing to {direction}: the database is at {before or 'base'}")
        return MigrationResult(before, before, [])
    names = ", ".join(f"{r.id} ({r.message})" if r.message else r.id for r in steps)
    ui.info(f"{direction} {database.shown} from {before or 'base'} to {target}: {names}")
    at.runtime.check_migrations()  # refused before the journal says it started
    record = {"database": database.shown, "before": before, "target": target}
    if database.path is not None:  # SQLite (local only): its directory, for env.py to open it
        database.path.parent.mkdir(parents=True, exist_ok=True)
    if journal is not None:
        journal.append(f"db.{direction}", **record, result="started")
    try:
        _run_with_retries(settings, ui, at, script, direction, target)
        after = current_revision(settings, at.host, ui.redact)
        _check_arrived(settings, script, before, after, target)
    except BaseException as exc:
        if journal is not None:
            journal.append(f"db.{direction}", **record, result="failed", error=str(exc))
        raise
    applied = [r.id for r in (steps if direction == "upgrade" else reversed(steps))]
    if journal is not None:
        journal.append(f"db.{direction}", **record, result="ok", after=after, applied=applied)
    ui.success(f"{direction} done: {database.shown} is at {after or 'base'}")
    return MigrationResult(before, after, applied)


def _check_arrived(
    settings: EnvironmentSettings,
    script: ScriptDirectory,
    before: str | None,
    after: str | None,
    target: str,
) -> None:
    """The database is where alembic was asked to take it, or the run fails loudly."""
    if target in ("head", "heads"):
        expected: str | None = ",".join(sorted(script.get_heads())) or None
    else:
        expected = None if target == "base" else target
    if after == expected:
        return
    key = settings.database.url_key
    now = after or "base"
    said = f"still at {now}" if after == before else f"at {now}, not {expected or 'base'}"
    env_py, root = migrations_dir(settings) / "env.py", settings.root.resolve()
    shown = env_py.relative_to(root) if env_py.is_relative_to(root) else env_py
    raise DeployFailure(
        f"the migration reported success but {key}'s database is {said}: does {shown} read "
        f"the URL deploytools gives it ({key} in the environment)?",
        f"make env.py connect to os.environ[{key!r}] (alembic's context.configure(url=...) or "
        "create_engine(...)), then run `invoke db.migrate` again",
    )


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


class _LockTimeout(Exception):
    """One attempt ended on lock_timeout: worth another."""

    def __init__(self, done: Result) -> None:
        super().__init__(_reason(done))
        self.done = done


def _run_with_retries(
    settings: EnvironmentSettings,
    ui: Ui,
    at: Where,
    script: ScriptDirectory,
    direction: Literal["upgrade", "downgrade"],
    target: str,
) -> None:
    import stamina

    ini = release_ini(settings)
    run = alembic.upgrade if direction == "upgrade" else alembic.downgrade
    args = run(ini, target)
    env = _timeouts(settings)
    attempts = settings.database.lock_retries + 1
    done: Result | None = None
    try:
        for attempt in stamina.retry_context(
            on=_LockTimeout, attempts=attempts, timeout=None, wait_initial=0.2, wait_max=5.0
        ):
            with attempt:
                if attempt.num > 1:
                    ui.warn(f"lock timeout: attempt {attempt.num} of {attempts}")
                done = at.runtime.run_alembic(at.release, args, env)
                if not done.ok and LOCK_TIMEOUT.search(done.stdout + done.stderr):
                    raise _LockTimeout(done)
    except _LockTimeout as exc:
        done = exc.done
    assert done is not None
    if not done.ok:
        raise _explain(done, settings, at, script, direction, attempts, ui.redact)


def _timeouts(settings: EnvironmentSettings) -> dict[str, str]:
    """libpq's PGOPTIONS: the session settings every connection env.py opens starts with."""
    if open_database(settings).engine != "postgresql":
        return {}
    conf = settings.database
    return {
        "PGOPTIONS": f"-c lock_timeout={int(conf.lock_timeout_ms)} "
        f"-c statement_timeout={int(conf.statement_timeout_ms)}"
    }


def _explain(
    done: Result,
    settings: EnvironmentSettings,
    at: Where,
    script: ScriptDirectory,
    direction: str,
    attempts: int,
    redact: Redactor,
) -> DeployFailure:
    """One operator-facing error: which revision failed, why, and where the database is now."""
    failing = _failing_revision(done, script)
    try:
        now = current_revision(settings, at.host, redact) or "base"
    except DeployFailure:
        now = "unknown (the database cannot be reached)"
    why = _reason(done)
    if LOCK_TIMEOUT.search(done.stdout + done.stderr):
        why = (
            f"lock timeout ({settings.database.lock_timeout_ms} ms) on every one of {attempts} "
            f"attempt(s): another session holds a lock the migration needs ({why})"
        )
    where_ = f"revision {failing}" if failing else f"the {direction}"
    return DeployFailure(
        redact(f"{direction} failed in {where_}: {why}\nthe database is at revision {now}"),
        "fix the migration (or wait for the lock holder) and run `invoke db.migrate` again",
    )


def _failing_revision(done: Result, script: ScriptDirectory) -> str | None:
    """The revision whose file is deepest in the traceback alembic printed (its upgrade or
    downgrade raised); files are matched by name, the release's copy being elsewhere."""
    by_name = {str(s.path).replace("\\", "/").rsplit("/", 1)[-1]: s.revision
               for s in script.walk_revisions()}  # fmt: skip
    found = None
    for path in TRACEBACK_FILE.findall(done.stderr + done.stdout):
        found = by_name.get(path.replace("\\", "/").rsplit("/", 1)[-1], found)
    return found


def _reason(done: Result) -> str:
    """The last line alembic printed: the exception, or ``FAILED: ...``."""
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    raised = [line for line in lines if RAISED.match(line)]
    return (raised or lines or [f"alembic exited with code {done.returncode}"])[-1]
