"""Which database an environment uses: its URL from the env file, understood once.

The URL is a secret (it holds the password): it is learned by the redactor as soon as it is
read and only ever shown as ``Database.shown``, which has no password.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deploytools.commands.postgres import Conn
from deploytools.config import EnvironmentSettings
from deploytools.dburl import UrlProblem, is_postgres, normalise
from deploytools.env.file import load_values
from deploytools.errors import OperatorError
from deploytools.redact import Redactor

Engine = Literal["postgresql", "sqlite"]


@dataclass(frozen=True)
class Database:
    engine: Engine
    name: str  # database name, or the SQLite file name
    shown: str  # safe to print: no password
    conn: Conn | None = None  # PostgreSQL
    path: Path | None = None  # SQLite file


def database_url(settings: EnvironmentSettings, redactor: Redactor | None = None) -> str:
    """The environment's database URL from its env file; the redactor learns the file's secrets."""
    if redactor is not None:
        from deploytools.env.validate import learned_values

        values = learned_values(settings, redactor)
    else:
        values = load_values(settings.path(settings.env_file))
    key = settings.database.url_key
    url = values.get(key, "").strip()
    if not url:
        raise OperatorError(
            f"{key} is not set in {settings.env_file}",
            f"add {key}=postgresql://USER:PASSWORD@HOST:5432/DBNAME (or sqlite:///FILE) to it",
        )
    return url


def open_database(
    settings: EnvironmentSettings,
    redactor: Redactor | None = None,
    *,
    url: str | None = None,
    say: Callable[[str], None] | None = None,
) -> Database:
    """Parse ``url`` (default: the env file's) into a ``Database``; bad URLs are operator errors.

    A PostgreSQL URL is taken as the app writes it (``deploytools.dburl``); ``say`` (e.g.
    ``ui.info``) is told what was dropped from it on the way, by the operations that connect.
    """
    raw = url if url is not None else database_url(settings, redactor)
    if redactor is not None:
        redactor.add(raw)
    key = settings.database.url_key
    if "://" in raw and raw.partition("://")[0].partition("+")[0].lower() == "sqlite":
        return _sqlite(settings, raw)
    if not is_postgres(raw):
        raise OperatorError(
            f"{key} is neither a postgresql:// nor a sqlite:/// URL",
            f"fix it in {settings.env_file} (its value is not shown: it may hold a password)",
        )
    try:
        found = normalise(raw, key)
    except UrlProblem as exc:
        raise OperatorError(
            exc.problem, f"in {settings.env_file}, set {key} to {exc.want}"
        ) from None
    conn = found.conn
    if redactor is not None and conn.password:
        redactor.add(conn.password)  # also one given as ?password=
    if say is not None:
        for note in found.notes:
            say(note)
    return Database("postgresql", conn.dbname, conn.uri, conn=conn)


def _sqlite(settings: EnvironmentSettings, url: str) -> Database:
    """``sqlite[+driver]:///relative`` is relative to the app directory (where the app runs)."""
    rest = url.partition("://")[2].partition("?")[0]
    location = rest[1:] if rest.startswith("/") else ""
    if not location or location == ":memory:":
        raise OperatorError(
            f"{settings.database.url_key} names no SQLite file ({url})",
            "use sqlite:///relative/file.sqlite3 or sqlite:////absolute/file.sqlite3",
        )
    path = Path(location)
    if not path.is_absolute():
        path = settings.path(settings.app_dir) / path
    shown = f"sqlite:///{path}"
    return Database("sqlite", path.name, shown, path=path)
