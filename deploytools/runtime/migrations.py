"""Where the app's alembic runs when no pipeline hands one over: built here, above ``db`` and
the runtimes, so that ``db`` knows a runtime only as the ``db.migrate.Where`` it is given.

- ``where``: the environment's runtime on a host, the app as it stands (``db.migrate``,
  ``db.downgrade``).
- ``checkout``: the checkout's code outside a deploy (``db.lint``, ``db.migrate --sql``, the
  verify gate's migration round trip); for compose, images built from it under a scratch
  release id, removed afterwards.
- ``dialect_only``: the process runtime's interpreter on this machine's checkout, a bare
  ``dialect://`` URL standing for the env file's (the verify gate: no database, no engine).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from deploytools.config import EnvironmentSettings
from deploytools.db.lint import LintReport, lint, lint_rendered
from deploytools.db.migrate import Where, render_sql, sql_span
from deploytools.errors import CommandError, OperatorError
from deploytools.hosts.base import Host
from deploytools.hosts.local import LocalHost
from deploytools.redact import Redactor


def where(
    settings: EnvironmentSettings, host: Host | None = None, redactor: Redactor | None = None
) -> Where:
    """The environment's runtime on ``host`` (default this machine), the app as it stands,
    with the env file's values (read through ``redactor`` when given)."""
    from deploytools.runtime import runtime_for

    host = host or LocalHost()
    return Where(host, runtime_for(settings, host, _env_values(settings, redactor)))


@contextmanager
def checkout(
    settings: EnvironmentSettings, host: Host | None = None, redactor: Redactor | None = None
) -> Iterator[Where]:
    """Where the checkout's code runs alembic outside a deploy (``db.lint``, ``migrate --sql``,
    the verify gate's round trip on a throwaway database).

    Process runtime: the app's interpreter on this machine's checkout, with the env file's
    values. Compose runtime: nothing of the app on this machine; the images are built from the
    checkout on ``host`` (the primary) as the deploy builds them, under a scratch release id
    (``sql-<env>-<commit>-<random>``: a concurrent run never removes this one's; the layers
    are in Docker's build cache for the deploy of the same commit), and that tag is removed
    afterwards (an image a release's tag also names stays).
    """
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
                "the images to run the migrations' alembic in did not build (docker compose "
                f"build, as a deploy builds them): {exc.problem}",
                "fix the build where compose says above (`docker compose build` shows it)",
            ) from None
        yield Where(host, runtime, scratch)
    finally:
        runtime.remove_release(scratch)  # a build cut short may have tagged images too


def dialect_only(settings: EnvironmentSettings, dialect: str) -> Where:
    """The process runtime's interpreter on this machine's checkout, with ``dialect://``
    (postgresql, sqlite) for the database URL: offline SQL needs no env file, no database."""
    from deploytools.runtime.process import ProcessRuntime

    url = {settings.database.url_key: f"{dialect}://"}
    return Where(LocalHost(), ProcessRuntime(settings, LocalHost(), url))


def checkout_sql(
    settings: EnvironmentSettings,
    *,
    start: str | None = None,
    end: str = "head",
    host: Host | None = None,
    redactor: Redactor | None = None,
) -> str:
    """``db.offline_sql`` of the checkout as it stands (``checkout``): the span is known, or
    refused, before anything is built to render it. ``start=None`` reads the database's
    revision on ``host``."""
    span = sql_span(settings, start=start, end=end, host=host, redactor=redactor)
    if not span:
        return ""
    with checkout(settings, host, redactor) as here:
        return render_sql(settings, span, here)


def checkout_lint(
    settings: EnvironmentSettings,
    *,
    start: str | None = "base",
    host: Host | None = None,
    redactor: Redactor | None = None,
) -> LintReport:
    """``db.lint`` of the checkout's revisions after ``start`` (None: those the database on
    ``host`` lacks), rendered in ``checkout`` for the env file's URL."""
    sql = checkout_sql(settings, start=start, host=host, redactor=redactor)
    return lint_rendered(settings, sql)


def migration_safety(
    settings: EnvironmentSettings, host: Host | None = None, redactor: Redactor | None = None
) -> LintReport:
    """Every revision, no database needed. The ``verify`` gate's check (no ``host``): no env
    file either, rendered on the process runtime's interpreter, never in an image. ``invoke
    db.lint`` gives the environment's primary ``host``: a compose environment's SQL is then
    rendered in an image built from the checkout, for the env file's URL (``checkout``)."""
    if host is not None and settings.runtime == "compose":
        return checkout_lint(settings, host=host, redactor=redactor)
    dialect = dialect_of(settings)
    return lint(settings, at=dialect_only(settings, dialect), start="base", dialect=dialect)


def _scratch_release(settings: EnvironmentSettings) -> str:
    """``sql-<env>-<short commit>-<random>``: a name no deploy gives (``release-…``)."""
    import secrets

    from deploytools.commands import git

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


def dialect_of(settings: EnvironmentSettings) -> str:
    """The env file's database kind when it is there (a CI checkout has only the examples)."""
    from deploytools.db.database import open_database

    try:
        return open_database(settings).engine
    except OperatorError:
        return "postgresql"
