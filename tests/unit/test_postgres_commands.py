"""Argv of the PostgreSQL client commands: exact lists, and never a password in them."""

from __future__ import annotations

import pytest

from deploytools.commands import postgres as pg
from deploytools.errors import OperatorError

URL = "postgresql+psycopg://app:s%3Acret%40pw@db.internal:5433/appdb?sslmode=require"
CONN = pg.parse_url(URL)
URI = "postgresql://app@db.internal:5433/appdb?sslmode=require"


def test_parse_url_keeps_everything_but_the_password() -> None:
    assert CONN == pg.Conn(uri=URI, dbname="appdb", password="s:cret@pw")
    assert CONN.secret_env() == {"PGPASSWORD": "s:cret@pw"}
    assert CONN.env() == {}  # what may show on a command line holds no password


@pytest.mark.parametrize("encoded", ["Secr3t%0Aline", "Secr3t%00nul"])
def test_parse_url_refuses_a_password_no_client_could_receive(encoded: str) -> None:
    with pytest.raises(OperatorError) as caught:
        pg.parse_url(f"postgresql://app:{encoded}@db/app")
    assert "password contains a line break or NUL" in caught.value.problem
    assert "Secr3t" not in str(caught.value)


def test_parse_url_moves_a_query_password_out_and_handles_no_user() -> None:
    conn = pg.parse_url("postgres://db:5432/app?password=hunter22&application_name=x")
    assert conn == pg.Conn("postgresql://db:5432/app?application_name=x", "app", "hunter22")


def test_parse_url_without_password_needs_no_env() -> None:
    conn = pg.parse_url("postgresql://app@127.0.0.1/app")
    assert conn.password is None and conn.secret_env() == {} and conn.env() == {}
    assert conn.env(lock_timeout_ms=2500) == {"PGOPTIONS": "-c lock_timeout=2500"}


@pytest.mark.parametrize(
    "url", ["mysql://u:p@h/db", "postgresql://u:p@h", "postgresql://u:p@h/", "not a url", ""]
)
def test_parse_url_refuses_what_is_not_a_postgres_url_without_echoing_it(url: str) -> None:
    with pytest.raises(OperatorError) as caught:
        pg.parse_url(url)
    assert "postgresql://USER@HOST:PORT/DBNAME" in caught.value.problem
    if url:
        assert url not in str(caught.value)


def test_dump_custom_format() -> None:
    assert pg.dump(CONN, "/b/.x.dump.partial") == [
        "pg_dump",
        "--format=custom",
        "--file=/b/.x.dump.partial",
        "--no-password",
        f"--dbname={URI}",
    ]


def test_dump_directory_format_in_parallel_with_a_lock_wait_bound() -> None:
    argv = pg.dump(CONN, "/b/x.dir", fmt="directory", jobs=2, lock_wait_timeout_ms=5000)
    assert argv == [
        "pg_dump",
        "--format=directory",
        "--file=/b/x.dir",
        "--jobs=2",
        "--lock-wait-timeout=5000",
        "--no-password",
        f"--dbname={URI}",
    ]


def test_custom_format_ignores_jobs() -> None:
    assert "--jobs=4" not in pg.dump(CONN, "/b/x", jobs=4)


def test_read_archive_reads_everything_to_dev_null() -> None:
    assert pg.read_archive("/b/x.dump") == ["pg_restore", "--file=/dev/null", "/b/x.dump"]


def test_restore_is_one_transaction_that_replaces_the_archived_objects() -> None:
    assert pg.restore(CONN, "/b/x.dump") == [
        "pg_restore",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        "--no-password",
        f"--dbname={URI}",
        "/b/x.dump",
    ]


def test_psql_script_from_stdin_unaligned() -> None:
    assert pg.psql(CONN) == [
        "psql",
        "--no-psqlrc",
        "--no-password",
        "--quiet",
        "--tuples-only",
        "--no-align",
        "--field-separator=|",
        "--set=ON_ERROR_STOP=1",
        "--file=-",
        f"--dbname={URI}",
    ]


COMPOSE = ["docker", "compose", "-p", "app", "-f", "/srv/app/docker-compose.prod.yml"]


def test_in_service_passes_the_environment_by_name_only() -> None:
    argv = pg.in_service(
        COMPOSE, "postgres", ["pg_dump", "--format=custom"], ["PGOPTIONS", "PGPASSWORD"]
    )
    assert argv == [
        *COMPOSE,
        "exec",
        "-T",
        "-e",
        "PGOPTIONS",
        "-e",
        "PGPASSWORD",
        "postgres",
        "pg_dump",
        "--format=custom",
    ]


def test_in_service_without_environment() -> None:
    assert pg.in_service(COMPOSE, "db", ["psql"]) == [*COMPOSE, "exec", "-T", "db", "psql"]


def test_copies_and_cleanup_in_the_service() -> None:
    assert pg.copy_from_service(COMPOSE, "db", "/tmp/a", "/b/a") == [
        *COMPOSE,
        "cp",
        "db:/tmp/a",
        "/b/a",
    ]
    assert pg.copy_to_service(COMPOSE, "db", "/b/a", "/tmp/a") == [
        *COMPOSE,
        "cp",
        "/b/a",
        "db:/tmp/a",
    ]
    assert pg.remove_in_service(COMPOSE, "db", "/tmp/a") == [
        *COMPOSE,
        "exec",
        "-T",
        "db",
        "rm",
        "-rf",
        "--",
        "/tmp/a",
    ]
