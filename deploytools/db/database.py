"""Which database an environment uses: its URL from the env file, understood once.

The URL is a secret (it holds the password): it is learned by the redactor as soon as it is
read and only ever shown as ``Database.shown``, which has no password.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from deploytools.commands.postgres import SCHEMES, Conn, parse_url
from deploytools.config import EnvironmentSettings
from deploytools.envfile import load_values
from deploytools.errors import OperatorError
from deploytools.redact import Redactor

Engine = Literal["postgresql", "sqlite"]


@dataclass(frozen=True)
class Database:
    engine: Engine
    url: str  # secret: for SQLAlchemy only
    name: str  # database name, or the SQLite file name
    shown: str  # safe to print: no password
    conn: Conn | None = None  # PostgreSQL
    path: Path | None = None  # SQLite file

    @property
    def sqlalchemy_url(self) -> str:
        """The URL with the driver we ship (psycopg 3), whatever driver the env file names."""
        if self.engine == "sqlite":
            return f"sqlite:///{self.path}"
        return "postgresql+psycopg://" + self.url.split("://", 1)[1]


def database_url(settings: EnvironmentSettings, redactor: Redactor | None = None) -> str:
    """The environment's database URL from its env file; the redactor learns the file's secrets."""
    if redactor is not None:
        from deploytools.envvalidate import learned_values

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
    settings: EnvironmentSettings, redactor: Redactor | None = None, *, url: str | None = None
) -> Database:
    """Parse ``url`` (default: the env file's) into a ``Database``; bad URLs are operator errors."""
    raw = url if url is not None else database_url(settings, redactor)
    if redactor is not None:
        redactor.add(raw)
    scheme = raw.split("://", 1)[0].split("+", 1)[0].lower() if "://" in raw else ""
    if scheme == "sqlite":
        return _sqlite(settings, raw)
    if scheme in SCHEMES:
        conn = parse_url(raw)
        return Database("postgresql", raw, conn.dbname, conn.uri, conn=conn)
    raise OperatorError(
        f"{settings.database.url_key} is neither a postgresql:// nor a sqlite:/// URL",
        f"fix it in {settings.env_file} (its value is not shown: it may hold a password)",
    )


def _sqlite(settings: EnvironmentSettings, url: str) -> Database:
    """``sqlite:///relative`` is relative to the app directory (where the app runs)."""
    location = urlsplit(url).path[1:] if url.startswith("sqlite:///") else ""
    if not location or location == ":memory:":
        raise OperatorError(
            f"{settings.database.url_key} names no SQLite file ({url})",
            "use sqlite:///relative/file.sqlite3 or sqlite:////absolute/file.sqlite3",
        )
    path = Path(location)
    if not path.is_absolute():
        path = settings.path(settings.app_dir) / path
    return Database("sqlite", url, path.name, f"sqlite:///{path}", path=path)
