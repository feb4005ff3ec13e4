"""Alembic environment of the example application.

Where the database URL comes from, first match wins:
1. ``config.attributes["connection"]``: an open connection handed over by deploytools, with
   ``lock_timeout``/``statement_timeout`` set for its session and no transaction open: the
   migration context opens it below, so that a revision's ``autocommit_block()`` can step out;
2. ``config.attributes["url"]`` (deploytools, offline SQL);
3. ``-x env_file=PATH``: DATABASE_URL read from that env file (by hand, like the toolkit does);
4. the ``DATABASE_URL`` environment variable (by hand:
   ``alembic -c example/alembic.ini upgrade head``).

Independent of the application code: a migration must keep working when the app changes.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine, pool
from sqlalchemy.engine import make_url

config = context.config
if config.config_file_name:  # by hand, with alembic.ini: its logging setup
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = config.attributes.get("url") or _from_env_file() or os.environ.get("DATABASE_URL", "")
    if not url:
        raise RuntimeError(
            "no database URL: set DATABASE_URL, pass -x env_file=config/local.env, "
            "or run `invoke db.migrate --env NAME`"
        )
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # the driver we install
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


if context.is_offline_mode():
    run_offline()
elif (shared := config.attributes.get("connection")) is not None:
    run_online(shared)
else:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        run_online(connection)
    engine.dispose()
