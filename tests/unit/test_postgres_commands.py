"""Argv of the PostgreSQL client commands: exact lists, and never a password in them."""

from __future__ import annotations

from deploytools.commands import postgres as pg

URI = "postgresql://app@db.internal:5433/appdb?sslmode=require"
CONN = pg.Conn(uri=URI, dbname="appdb", password="s:cret@pw")


def test_the_password_goes_only_in_the_secret_env() -> None:
    assert CONN.secret_env() == {"PGPASSWORD": "s:cret@pw"}
    assert CONN.env() == {}  # what may show on a command line holds no password
    assert pg.Conn(uri=URI, dbname="appdb").secret_env() == {}


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
