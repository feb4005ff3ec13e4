"""An app's PostgreSQL URL as deploytools' clients take it: the libpq URI and environment of
pg_dump, pg_restore and psql, and the psycopg 3 URL of its own engine. Exact values; never a
password in the URI, the argv or a message."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from deploytools.commands import postgres as pg
from deploytools.dburl import UrlProblem, is_postgres, normalise
from tests.support.secretforms import leaked

# Every character a URL, libpq or a shell treats specially, as an app percent-encodes it.
PASSWORD = "p@ss:w/rd%x$y"
ENCODED = quote(PASSWORD, safe="")


@pytest.mark.parametrize(
    ("url", "uri", "options", "driver"),
    [
        (
            f"postgresql+asyncpg://app:{ENCODED}@db.internal:5433/appdb?ssl=disable",
            "postgresql://app@db.internal:5433/appdb?sslmode=disable",
            None,
            "asyncpg",
        ),
        (
            f"postgresql+asyncpg://app:{ENCODED}@db.internal/appdb?ssl=verify-full",
            "postgresql://app@db.internal/appdb?sslmode=verify-full",
            None,
            "asyncpg",
        ),
        (
            f"postgresql+psycopg://app:{ENCODED}@db.internal:5432/appdb?sslmode=require",
            "postgresql://app@db.internal:5432/appdb?sslmode=require",
            None,
            "psycopg",
        ),
        (
            f"postgresql+psycopg2://app:{ENCODED}@10.0.0.5/appdb?sslmode=prefer&connect_timeout=5",
            "postgresql://app@10.0.0.5/appdb?sslmode=prefer&connect_timeout=5",
            None,
            "psycopg2",
        ),
        (  # Heroku's spelling; a space in a value is %20 (libpq reads "+" as itself)
            f"postgres://app:{ENCODED}@db/appdb?application_name=my%20app",
            "postgresql://app@db/appdb?application_name=my%20app",
            None,
            "",
        ),
        (  # an app that swaps the scheme for +asyncpg writes asyncpg's ssl in a plain URL
            f"postgresql://app:{ENCODED}@db/appdb?ssl=require&sslmode=require",
            "postgresql://app@db/appdb?sslmode=require",
            None,
            "",
        ),
        (  # options travel in PGOPTIONS, where deploytools' session settings join them
            f"postgresql+psycopg://app:{ENCODED}@db/appdb?options=-c%20search_path%3Dapp",
            "postgresql://app@db/appdb",
            "-c search_path=app",
            "psycopg",
        ),
        (
            f"postgresql://app:{ENCODED}@[::1]:5432/appdb",
            "postgresql://app@[::1]:5432/appdb",
            None,
            "",
        ),
        (
            "postgresql:///appdb?host=/var/run/postgresql",
            "postgresql:///appdb?host=/var/run/postgresql",
            None,
            "",
        ),
    ],
)
def test_an_app_url_becomes_a_libpq_uri_without_password(
    url: str, uri: str, options: str | None, driver: str
) -> None:
    found = normalise(url, "DATABASE_URL")

    password = None if url.startswith("postgresql:///") else PASSWORD
    assert found.conn == pg.Conn(uri=uri, dbname=found.conn.dbname, password=password,
                                 options=options)  # fmt: skip
    assert found.driver == driver and found.notes == ()
    assert found.conn.secret_env() == ({"PGPASSWORD": PASSWORD} if password else {})
    argv = pg.dump(found.conn, "/b/x.dump")
    assert argv[-1] == f"--dbname={uri}"
    assert leaked(PASSWORD, " ".join(argv) + repr(found.conn.env())) == []


def test_deploytools_own_engine_gets_psycopg_and_libpq_options_only() -> None:
    found = normalise(
        f"postgresql+asyncpg://app:{ENCODED}@db:6432/appdb?ssl=verify-ca"
        "&prepared_statement_cache_size=0&options=-c%20search_path%3Dapp",
        "DATABASE_URL",
    )

    assert found.conn == pg.Conn(
        "postgresql://app@db:6432/appdb?sslmode=verify-ca", "appdb", PASSWORD, "-c search_path=app"
    )


def test_options_of_the_apps_driver_are_dropped_with_a_note() -> None:
    found = normalise(
        "postgresql+asyncpg://app@db/appdb?ssl=disable&prepared_statement_cache_size=0"
        "&command_timeout=30&timeout=10",
        "DATABASE_URL",
    )

    assert found.conn.uri == "postgresql://app@db/appdb?sslmode=disable"
    (note,) = found.notes
    assert note.startswith("DATABASE_URL: left out of deploytools' connections")
    assert "command_timeout, prepared_statement_cache_size, timeout, which tune" in note


def test_a_password_given_as_an_option_is_kept_apart_too() -> None:
    found = normalise("postgres://db:5432/app?password=hunter22&application_name=x")
    assert found.conn == pg.Conn("postgresql://db:5432/app?application_name=x", "app", "hunter22")


def test_pgoptions_carries_the_urls_options_then_deploytools_lock_timeout() -> None:
    conn = normalise("postgresql://app@db/app?options=-c%20work_mem%3D64MB").conn
    assert conn.env() == {"PGOPTIONS": "-c work_mem=64MB"}
    assert conn.env(lock_timeout_ms=2500) == {"PGOPTIONS": "-c work_mem=64MB -c lock_timeout=2500"}
    plain = normalise("postgresql://app@db/app").conn
    assert plain.env() == {} and plain.env(lock_timeout_ms=2500) == {
        "PGOPTIONS": "-c lock_timeout=2500"
    }


@pytest.mark.parametrize(
    ("query", "problem", "want"),
    [
        (
            "ssl=true",
            "DATABASE_URL has ssl= set to something that is not an SSL mode",
            "ssl=require",
        ),
        ("ssl=on", "not an SSL mode (asyncpg's spelling of libpq's sslmode)", "ssl=disable"),
        ("sslmode=enabled", "DATABASE_URL has sslmode= set to something", "sslmode=require"),
        ("ssl=disable&sslmode=require", "sets ssl= and sslmode= to different", "one of them"),
        ("sslmod=require", "has the option 'sslmod', which neither libpq", "options=-c NAME"),
        ("search_path=app", "has the option 'search_path'", "options=-c NAME=VALUE"),
        (
            "application_name=a&application_name=b",
            "'application_name' more than once",
            "sets application_name once",
        ),
        ("sslpassword=k3y-pass", "secret option 'sslpassword'", "a URL without sslpassword"),
    ],
)
def test_an_option_no_client_takes_is_a_problem_naming_the_key(
    query: str, problem: str, want: str
) -> None:
    url = f"postgresql+asyncpg://app:{ENCODED}@db/appdb?{query}"
    with pytest.raises(UrlProblem) as caught:
        normalise(url, "DATABASE_URL")
    assert problem in caught.value.problem and want in caught.value.want
    said = caught.value.problem + caught.value.want
    assert leaked(PASSWORD, said) == [] and "k3y-pass" not in said


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql+pg8000://u:Secr3t-pw@h/db", "names the driver 'pg8000'"),
        ("postgresql://u:Secr3t-pw@h", "names no database"),
        ("postgresql://u:Secr3t-pw@h/", "names no database"),
        ("postgresql://u:Secr3t-pw@h:port/db", "is not a postgresql://USER:PASSWORD@HOST"),
        ("Secr3t-pw", "is not a postgresql://USER:PASSWORD@HOST:PORT/DBNAME URL"),
        ("mysql://u:Secr3t-pw@h/db", "is not a postgresql://"),
        ("", "is not a postgresql://"),
    ],
)
def test_what_is_no_postgres_url_is_refused_without_echoing_it(url: str, problem: str) -> None:
    with pytest.raises(UrlProblem) as caught:
        normalise(url, "DATABASE_URL")
    assert caught.value.problem.startswith("DATABASE_URL ") and problem in caught.value.problem
    assert "Secr3t" not in caught.value.problem + caught.value.want


@pytest.mark.parametrize("encoded", ["Secr3t%0Aline", "Secr3t%00nul"])
def test_a_password_no_client_could_receive_is_refused(encoded: str) -> None:
    with pytest.raises(UrlProblem) as caught:
        normalise(f"postgresql://app:{encoded}@db/app")
    assert "password in the database URL contains a line break or NUL" in caught.value.problem
    assert "Secr3t" not in str(caught.value) + caught.value.want


def test_is_postgres_knows_the_schemes_apps_write() -> None:
    for url in ("postgresql://h/d", "POSTGRES://h/d", "postgresql+asyncpg://h/d"):
        assert is_postgres(url), url
    for url in ("sqlite:///x", "mysql://h/d", "postgresql", "postgresqlx://h/d"):
        assert not is_postgres(url), url
