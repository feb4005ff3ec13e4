"""Alembic environment of the example application, in the shape most apps have.

The database URL comes from, first match wins:
1. ``-x env_file=PATH``: DATABASE_URL read from that env file (by hand, like the toolkit does);
2. the ``DATABASE_URL`` environment variable: deploytools runs ``alembic`` where the app runs
   (this app's interpreter in the release's directory, or a container of its image) with the
   env file's values in the environment; by hand: ``alembic -c example/alembic.ini upgrade head``.

deploytools sets ``lock_timeout``/``statement_timeout`` through libpq's ``PGOPTIONS``, which
every connection opened here reads, and checks the database's revision afterwards.

Independent of the application code: a migration must keep working when the app changes.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, Engine, create_engine, event, pool
from sqlalchemy.engine import make_url

ASYNCPG_ONLY = {"prepared_statement_cache_size", "command_timeout", "server_settings"}
config = context.config
if config.config_file_name:  # with alembic.ini: its logging setup
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = _from_env_file() or os.environ.get("DATABASE_URL", "")
    if not url:
        raise RuntimeError(
            "no database URL: set DATABASE_URL, pass -x env_file=config/local.env, "
            "or run `invoke db.migrate --env NAME`"
        )
    parsed = make_url(url)
    if parsed.get_backend_name() in ("postgresql", "postgres"):
        # The driver this app installs (psycopg 3), whichever the URL names: asyncpg's ssl=
        # is libpq's sslmode=, and options only asyncpg knows are left out.
        query = {k: v for k, v in parsed.query.items() if k not in ASYNCPG_ONLY}
        if "ssl" in query:
            query.setdefault("sslmode", query.pop("ssl"))
        parsed = parsed.set(drivername="postgresql+psycopg", query=query)
    return parsed.render_as_string(hide_password=False)


def _from_env_file() -> str:
    path = context.get_x_argument(as_dictionary=True).get("env_file")
    if not path:
        return ""
    from dotenv import dotenv_values

    return dotenv_values(path).get("DATABASE_URL") or ""


def configure(**options: object) -> None:
    context.configure(
        target_metadata=None,
        transaction_per_migration=False,  # one transaction: a failure leaves the old revision
        **options,
    )


def run_offline() -> None:
    configure(url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Connection) -> None:
    configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def engine() -> Engine:
    made = create_engine(database_url(), poolclass=pool.NullPool)
    if made.dialect.name == "sqlite":
        # pysqlite opens a transaction only before INSERT/UPDATE/DELETE: the DDL of a revision
        # that fails later would stay. SQLAlchemy's recipe: the driver never begins, we do.
        event.listen(
            made, "connect", lambda dbapi, _record: setattr(dbapi, "isolation_level", None)
        )
        event.listen(made, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
    return made


if context.is_offline_mode():
    run_offline()
else:
    online = engine()
    with online.connect() as connection:
        run_online(connection)
    online.dispose()
