"""A PostgreSQL URL as an app writes it, understood once for every connection deploytools makes.

The app's URL names the app's driver and that driver's options: SQLAlchemy's
``postgresql+asyncpg://…?ssl=require``, ``postgresql+psycopg://…?sslmode=require``,
``postgresql+psycopg2://…``, or a plain ``postgres://…``. deploytools connects with other
clients, on libpq: the PostgreSQL tools (pg_dump, pg_restore, psql; migrations run in the app's
own runtime with its URL). ``normalise`` gives them what libpq takes:

- the driver suffix goes, and ``postgres`` is ``postgresql``;
- asyncpg's ``ssl=MODE`` is libpq's ``sslmode=MODE``: asyncpg documents the same six modes with
  libpq's meaning (an app that swaps the scheme for ``+asyncpg`` writes it in a plain URL too);
- options of asyncpg or of SQLAlchemy's dialect that libpq does not know (statement caches,
  command timeouts) tune the app's driver, not the connection: they are dropped, with a note;
- any other option libpq does not know is an error, as it would be for the app's driver;
- the password is kept apart (``PGPASSWORD`` for the tools, never in an argv), and so is
  ``options``: it travels in ``PGOPTIONS``, where deploytools' own session settings join it
  instead of being overridden by it.

libpq's keywords are libpq's own list (psycopg's ``Conninfo.get_defaults()``). sqlalchemy and
psycopg are imported inside the functions: ``invoke --list`` must not pay for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from deploytools.commands.postgres import Conn

if TYPE_CHECKING:
    from sqlalchemy.engine.url import URL

BACKENDS = ("postgresql", "postgres")
LIBPQ_DRIVERS = ("psycopg", "psycopg_async", "psycopg2", "psycopg2cffi")
DRIVERS = ("", *LIBPQ_DRIVERS, "asyncpg")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# URL options that only the app's driver reads, never libpq: asyncpg.connect() keywords and
# SQLAlchemy's own (prepared_statement_cache_size of its asyncpg dialect, async_fallback).
DRIVER_OPTIONS = frozenset(
    {
        "timeout", "command_timeout", "statement_cache_size", "max_cached_statement_lifetime",
        "max_cacheable_statement_size", "direct_tls", "prepared_statement_cache_size",
        "async_fallback",
    }
)  # fmt: skip
LIBPQ_OPTIONS_DOC = "https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS"
SHAPE = "postgresql://USER:PASSWORD@HOST:PORT/DBNAME"


class UrlProblem(ValueError):
    """What is wrong with the URL and what a good one is (``set KEY to {want}``); neither ever
    holds the URL or its values."""

    def __init__(self, problem: str, want: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.want = want


@dataclass(frozen=True)
class PgUrl:
    """One app URL, as libpq's clients take it."""

    conn: Conn  # for pg_dump, pg_restore, psql: a URI without password, the rest apart
    driver: str  # the app's driver ("" when the URL names none)
    notes: tuple[str, ...] = ()  # options dropped on the way, said to the operator


def is_postgres(url: str) -> bool:
    """Whether ``url`` names PostgreSQL (``postgresql[+driver]://``, ``postgres://``)."""
    scheme = url.partition("://")[0] if "://" in url else ""
    return scheme.partition("+")[0].lower() in BACKENDS


def normalise(url: str, key: str = "the database URL") -> PgUrl:
    """The app's PostgreSQL URL for libpq's clients; ``key`` names it in every message.

    Raises ``UrlProblem`` for what no client could connect with: not a URL, no database name,
    a driver deploytools does not know, an SSL mode that is none, an option no driver takes,
    a secret that only a command line could carry to the PostgreSQL tools.
    """
    parsed = _parse(url, key)
    # As the app's SQLAlchemy reads it (2.1 decodes a %XX in it, 2.0 keeps it); never empty.
    dbname = str(parsed.database)
    driver = parsed.drivername.partition("+")[2]
    if driver not in DRIVERS:
        raise UrlProblem(
            f"{key} names the driver {driver!r}, whose options deploytools does not know",
            "a URL of postgresql+asyncpg://, postgresql+psycopg://, postgresql+psycopg2:// or"
            " postgresql://",
        )
    options, password, dropped = _libpq_options(parsed.query, key)
    password = parsed.password if parsed.password is not None else password
    if password and ("\n" in password or "\0" in password):
        raise UrlProblem(
            f"the password in {key} contains a line break or NUL character, which cannot be"
            " handed to the PostgreSQL client tools without writing it on a command line",
            "a URL whose password has no line break (its value is not shown)",
        )
    server_options = options.pop("options", None)
    conn = Conn(
        uri=_uri(parsed.username, parsed.host, parsed.port, dbname, options),
        dbname=dbname,
        password=password or None,
        options=server_options,
    )
    notes = [
        f"{key}: left out of deploytools' connections (pg_dump, pg_restore, psql):"
        f" {', '.join(sorted(dropped))}, which tune the app's driver and which libpq does not know"
    ]
    return PgUrl(conn, driver, tuple(notes) if dropped else ())


def _parse(url: str, key: str) -> URL:
    from sqlalchemy.engine.url import make_url
    from sqlalchemy.exc import ArgumentError

    not_a_url = UrlProblem(
        f"{key} is not a {SHAPE} URL (its value is not shown)",
        f"a {SHAPE} URL, with @ : / % in the password percent-encoded",
    )
    try:
        parsed = make_url(url.strip())
    except (ArgumentError, ValueError):
        raise not_a_url from None
    if parsed.drivername.partition("+")[0].lower() not in BACKENDS:
        raise not_a_url
    if not parsed.database:
        raise UrlProblem(f"{key} names no database (the part after the last /)", f"a {SHAPE} URL")
    return parsed


def _libpq_options(
    query: Mapping[str, str | tuple[str, ...]], key: str
) -> tuple[dict[str, str], str | None, list[str]]:
    """(libpq options but the password, the query's password, the driver options dropped)."""
    known = libpq_keywords()
    options: dict[str, str] = {}
    password = None
    dropped = []
    for name, value in query.items():
        if not isinstance(value, str):
            raise UrlProblem(
                f"{key} sets the option {name!r} more than once", f"a URL that sets {name} once"
            )
        if name in ("ssl", "sslmode"):
            _ssl_mode(name, value, options, key)
        elif name == "password":
            password = value
        elif name in DRIVER_OPTIONS:
            dropped.append(name)
        elif name not in known:
            raise UrlProblem(
                f"{key} has the option {name!r}, which neither libpq (psycopg, pg_dump, psql)"
                " nor asyncpg knows",
                f"a URL without {name}, or with it spelt as libpq spells it ({LIBPQ_OPTIONS_DOC});"
                " a server setting goes in options=-c NAME=VALUE",
            )
        elif known[name]:
            raise UrlProblem(
                f"{key} carries the secret option {name!r}, which the PostgreSQL client tools"
                " could only receive on a command line",
                f"a URL without {name}: only the password (user:password@) is passed apart"
                " from the command line",
            )
        else:
            options[name] = value
    return options, password, dropped


def _ssl_mode(name: str, value: str, options: dict[str, str], key: str) -> None:
    """asyncpg's ``ssl`` and libpq's ``sslmode`` take the same modes; both must agree."""
    if value not in SSL_MODES:
        asyncpg = " (asyncpg's spelling of libpq's sslmode)" if name == "ssl" else ""
        raise UrlProblem(
            f"{key} has {name}= set to something that is not an SSL mode{asyncpg}",
            f"a URL with {name}=require (encrypted), {name}=verify-full (encrypted, the server's"
            f" certificate and name checked) or {name}=disable; the modes are"
            f" {', '.join(SSL_MODES)}",
        )
    if options.setdefault("sslmode", value) != value:
        raise UrlProblem(
            f"{key} sets ssl= and sslmode= to different SSL modes",
            "a URL with one of them: ssl= for asyncpg, sslmode= for psycopg and libpq",
        )


def _uri(
    user: str | None, host: str | None, port: int | None, dbname: str, options: dict[str, str]
) -> str:
    """A libpq URI: percent-encoded with ``%20`` for a space (libpq reads ``+`` as itself)."""
    address = f"[{host}]" if host and ":" in host else quote(host or "", safe="")
    netloc = (f"{quote(user, safe='')}@" if user else "") + address + (f":{port}" if port else "")
    query = urlencode(options, quote_via=quote, safe="/")
    return f"postgresql://{netloc}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")


@cache
def libpq_keywords() -> dict[str, bool]:
    """libpq's connection keywords, each with whether it holds a secret (its display '*')."""
    from psycopg import pq

    return {d.keyword.decode(): d.dispchar == b"*" for d in pq.Conninfo.get_defaults()}
