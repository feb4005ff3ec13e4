"""Backups, restore and migrations against a real PostgreSQL server (the session cluster).

Every test gets its own database; the session's server is stopped by its fixture.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from deploytools import db, targets
from deploytools.db.database import open_database
from deploytools.db.engine import engine_for
from deploytools.errors import DeployFailure, OperatorError
from deploytools.gitignore import IGNORE_FILE
from deploytools.hosts.local import LocalHost
from deploytools.hosts.ssh import SshHost
from deploytools.runtime import migrations
from tests.support.backups import journal_for
from tests.support.cmdlines import encodings, watch_cmdlines
from tests.support.dbenv import CapturedUi, app_with_revision, make_settings
from tests.support.procs import free_port
from tests.support.require import require
from tests.support.sshd import SshTarget

pytestmark = pytest.mark.integration

Rows = dict[str, list[tuple[Any, ...]]]
SNAPSHOT_SQL = {
    "users": "SELECT id, first_name, last_name, email FROM users ORDER BY id",
    "orders": "SELECT id, user_id, amount_cents, note FROM orders ORDER BY id",
}


@pytest.fixture
def database(postgres_server: Any, request: pytest.FixtureRequest) -> str:
    """A fresh database named after the test; returns its URL (with the password)."""
    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "")[:50]
    return str(postgres_server.create_database("".join(c if c.isalnum() else "_" for c in name)))


def sql(url: str, *statements: str) -> list[tuple[Any, ...]]:
    """Run statements in autocommit; the rows of the last one."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows: list[tuple[Any, ...]] = []
        for statement in statements:
            cursor = conn.execute(statement)  # type: ignore[call-overload]
            rows = cursor.fetchall() if cursor.description else []
        return rows


def snapshot(url: str) -> Rows:
    return {table: sql(url, query) for table, query in SNAPSHOT_SQL.items()}


def fill(url: str, users: int = 300) -> None:
    sql(
        url,
        "INSERT INTO users (first_name, last_name, email) SELECT 'First' || i, "
        "CASE WHEN i % 3 = 0 THEN '' ELSE 'Last ' || i END, 'u' || i || '@example.org' "
        f"FROM generate_series(1, {users}) i",
        "INSERT INTO users (first_name, last_name, email) VALUES ('Zoë', 'Ünïcödé ''q''', 'z@x')",
        "INSERT INTO orders (user_id, amount_cents, note) SELECT 1 + i % 50, i * 7, "
        "CASE WHEN i % 2 = 0 THEN NULL ELSE 'note; with -- chars ' || i END "
        "FROM generate_series(1, 1000) i",
    )


def migrated(tmp_path: Path, url: str, **database: Any) -> Any:
    settings = make_settings(tmp_path, url, **database)
    db.upgrade(settings, CapturedUi(), at=migrations.where(settings))
    return settings


def backup_files(settings: Any) -> list[str]:
    """What the backup directory holds besides its mark for git (deploytools.gitignore)."""
    directory = settings.path(settings.database.backup_dir) / settings.name
    names = sorted(p.name for p in directory.iterdir()) if directory.exists() else []
    return [n for n in names if n != IGNORE_FILE]


# -- backup and restore ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_backup_damage_restore_gives_back_exactly_the_same_rows(
    tmp_path: Path, database: str, fmt: str
) -> None:
    settings = migrated(tmp_path, database, format=fmt, jobs=2)
    fill(database)
    before = snapshot(database)
    host, ui = LocalHost(), CapturedUi()

    manifest = db.backup(settings, host, ui, journal_for(settings, host), release="rel-1")

    assert manifest.verified and manifest.alembic_revision == "0003" and manifest.format == fmt
    archive = settings.path("backups") / "test" / manifest.archive
    assert archive.stat().st_mode & 0o777 == (0o700 if fmt == "directory" else 0o600)
    assert (archive.parent / f"{manifest.id}.json").stat().st_mode & 0o777 == 0o600
    assert archive.parent.stat().st_mode & 0o777 == 0o700

    sql(
        database,
        "DELETE FROM orders WHERE id % 2 = 0",
        "UPDATE users SET first_name = 'damaged'",
        "INSERT INTO users (first_name, last_name, email) VALUES ('new', 'row', 'new@x')",
    )
    assert snapshot(database) != before

    db.restore(settings, host, ui, journal_for(settings, host), manifest.id)

    assert snapshot(database) == before
    assert db.current_revision(settings) == "0003"
    journal = (tmp_path / ".deploytools" / "test" / "journal.jsonl").read_text()
    assert '"kind": "db.restore"' in journal and '"result": "ok"' in journal
    assert database.split(":")[2].split("@")[0] not in journal + ui.text  # the password


def test_a_never_migrated_database_is_backed_up_without_a_revision(
    tmp_path: Path, database: str
) -> None:
    sql(database, "CREATE TABLE notes (body text)", "INSERT INTO notes VALUES ('kept')")
    settings = make_settings(tmp_path, database)

    manifest = db.backup(settings, LocalHost(), CapturedUi(), journal_for(settings, LocalHost()))

    assert manifest.alembic_revision is None and manifest.verified
    assert manifest.database == database.rsplit("/", 1)[1]
    assert manifest.server_version.split(".")[0].isdigit()


def test_a_truncated_archive_is_detected_by_checksum_and_by_reading_it(
    tmp_path: Path, database: str
) -> None:
    settings = migrated(tmp_path, database)
    fill(database, users=3000)
    host, ui = LocalHost(), CapturedUi()
    manifest = db.backup(settings, host, ui, journal_for(settings, host))
    archive = settings.path("backups") / "test" / manifest.archive
    cut = tmp_path / "cut.dump"
    cut.write_bytes(archive.read_bytes()[: manifest.size // 2])
    engine = engine_for(settings, host, open_database(settings))

    with pytest.raises(DeployFailure, match=r"verification .* failed"):
        engine.verify(str(cut))  # pg_restore --list alone would pass this file

    archive.write_bytes(cut.read_bytes())
    with pytest.raises(DeployFailure, match="does not match its manifest"):
        db.verify_backup(settings, host, ui, manifest.id)
    with pytest.raises(DeployFailure, match="does not match its manifest"):
        db.restore(settings, host, ui, journal_for(settings, host), manifest.id)


def test_a_tampered_archive_is_detected_by_checksum_and_by_reading_it(
    tmp_path: Path, database: str
) -> None:
    settings = migrated(tmp_path, database)
    fill(database, users=3000)
    host, ui = LocalHost(), CapturedUi()
    manifest = db.backup(settings, host, ui, journal_for(settings, host))
    archive = settings.path("backups") / "test" / manifest.archive
    data = bytearray(archive.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    archive.write_bytes(bytes(data))
    sql(database, "UPDATE users SET first_name = 'after the backup'")

    with pytest.raises(DeployFailure, match="does not match its manifest"):
        db.restore(settings, host, ui, journal_for(settings, host), manifest.id)
    assert sql(database, "SELECT DISTINCT first_name FROM users") == [("after the backup",)]

    engine = engine_for(settings, host, open_database(settings))
    with pytest.raises(DeployFailure, match="verification"):
        engine.verify(str(archive))


def test_pg_dump_killed_midway_leaves_nothing_behind(tmp_path: Path, database: str) -> None:
    settings = migrated(tmp_path, database, lock_timeout_ms=60_000)
    outcome: list[BaseException] = []

    def run_backup() -> None:
        try:
            db.backup(settings, LocalHost(), CapturedUi(), journal_for(settings, LocalHost()))
        except BaseException as exc:
            outcome.append(exc)

    with psycopg.connect(database) as blocker:  # pg_dump waits for this lock, mid-way
        blocker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        worker = threading.Thread(target=run_backup)
        worker.start()
        pid = wait_for(lambda: dumping(settings), "pg_dump to start writing its archive")
        os.kill(pid, signal.SIGKILL)
        worker.join(30)
    assert not worker.is_alive()

    assert len(outcome) == 1 and isinstance(outcome[0], DeployFailure)
    assert "pg_dump failed (exit -9)" in outcome[0].problem
    assert backup_files(settings) == []
    assert db.list_backups(settings, LocalHost()).backups == []


def test_a_too_small_target_fails_cleanly_without_a_partial_file(
    tmp_path: Path, database: str
) -> None:
    migrated(tmp_path, database)
    sql(
        database,
        "CREATE TABLE noise AS SELECT md5(random()::text) || md5(random()::text) AS v "
        "FROM generate_series(1, 60000)",
    )
    with tiny_filesystem(tmp_path / "tiny", "1m") as tiny:
        checked = make_settings(tmp_path, database, backup_dir=str(tiny))
        with pytest.raises(DeployFailure, match="not enough free space"):
            db.backup(checked, LocalHost(), CapturedUi(), journal_for(checked, LocalHost()))
        assert [p.name for p in (tiny / "test").iterdir()] == [IGNORE_FILE]

        # Let the dump start anyway: it runs out of space half-way.
        unchecked = make_settings(tmp_path, database, backup_dir=str(tiny), dump_size_ratio=0.01)
        with pytest.raises(DeployFailure, match=r"(?i)no space left on device"):
            db.backup(unchecked, LocalHost(), CapturedUi(), journal_for(unchecked, LocalHost()))
        assert [p.name for p in (tiny / "test").iterdir()] == [IGNORE_FILE]
    journal = (tmp_path / ".deploytools" / "test" / "journal.jsonl").read_text()
    assert journal.count('"result": "failed"') == 1  # the refused one never started


def test_verify_marks_an_unverified_backup_and_retention_ignores_it_until_then(
    tmp_path: Path, database: str
) -> None:
    settings = migrated(tmp_path, database, retention=1)
    host, ui = LocalHost(), CapturedUi()
    verified = db.backup(settings, host, ui, journal_for(settings, host))
    quick = db.backup(settings, host, ui, journal_for(settings, host), verify=False)
    assert db.prune(settings, host, ui, journal_for(settings, host), dry_run=True).delete == [quick]

    db.verify_backup(settings, host, ui, quick.id)

    assert db.prune(settings, host, ui, journal_for(settings, host)).delete == [verified]
    assert [m.id for m in db.list_backups(settings, host).backups] == [quick.id]


# A password with every character that a shell, JSON or a URL would treat specially.
TRICKY_PASSWORD = "p\"w\\x'y ${HOME} `id` wörd-"


def test_backup_verify_restore_over_ssh_never_put_the_password_on_a_command_line(
    tmp_path: Path,
    postgres_server: Any,
    ssh_hosts: Callable[[str], SshTarget],
    database: str,
) -> None:
    """The facts query, pg_dump, the verification and pg_restore run on an SSH host while every
    command line of the machine (the simulated host's included) is watched for the password."""
    password = TRICKY_PASSWORD + secrets.token_hex(4)
    role = f"owner_{secrets.token_hex(4)}"
    dbname = database.rsplit("/", 1)[1]
    postgres_server.hand_over(dbname, role, password)
    url = (
        f"postgresql://{role}:{quote(password, safe='')}"
        f"@{postgres_server.host}:{postgres_server.port}/{dbname}"
    )
    sql(url, "CREATE TABLE notes (body text)", "INSERT INTO notes VALUES ('kept'), ('wörd')")
    target = ssh_hosts("db")
    remote = target.host_settings()
    settings = make_settings(tmp_path, url).model_copy(update={"hosts": [remote]})
    host = SshHost.from_settings(remote, settings.timeouts)
    ui = CapturedUi()
    try:
        with watch_cmdlines([password]) as seen:
            manifest = db.backup(
                settings, host, ui, journal_for(settings, host)
            )  # psql (facts), pg_dump, pg_restore (verify)
            sql(url, "DELETE FROM notes")
            db.restore(
                settings, host, ui, journal_for(settings, host), manifest.id
            )  # psql (facts), pg_restore
        state = Path(targets.state_dir(settings, host))
    finally:
        host.close()

    assert seen.lines == [] and seen.passes > 10
    assert manifest.verified and manifest.database == dbname
    assert sql(url, "SELECT body FROM notes ORDER BY body") == [("kept",), ("wörd",)]
    assert not [p for p in Path(target.root).rglob("*") if p.name.startswith(".pgpass")]
    for where in (ui.text, (state / "journal.jsonl").read_text()):
        assert not any(form.decode() in where for form in encodings(password))


# -- migrations -----------------------------------------------------------------------------


def test_the_data_migration_splits_names_and_its_downgrade_joins_them_back(
    tmp_path: Path, database: str
) -> None:
    settings = make_settings(tmp_path, database)
    ui = CapturedUi()
    db.upgrade(settings, ui, "0002", at=migrations.where(settings))
    names = [("Ada Lovelace",), ("Cher",), ("Jean Claude Van Damme",)]
    for (name,) in names:
        sql(database, f"INSERT INTO users (name, email) VALUES ('{name}', '{name}@x')")

    result = db.upgrade(settings, ui, at=migrations.where(settings))

    assert (result.before, result.after, result.applied) == ("0002", "0003", ["0003"])
    assert sql(database, "SELECT first_name, last_name FROM users ORDER BY id") == [
        ("Ada", "Lovelace"),
        ("Cher", ""),
        ("Jean", "Claude Van Damme"),
    ]
    assert db.downgrade(settings, ui, "0002", at=migrations.where(settings)).applied == ["0003"]
    assert sql(database, "SELECT name FROM users ORDER BY id") == names
    assert db.downgrade(settings, ui, "base", at=migrations.where(settings)).after is None
    assert sql(database, "SELECT to_regclass('users')") == [(None,)]


def test_offline_sql_prints_pending_revisions_without_touching_the_database(
    tmp_path: Path, database: str
) -> None:
    settings = make_settings(tmp_path, database)
    db.upgrade(settings, CapturedUi(), "0002", at=migrations.where(settings))

    text = migrations.checkout_sql(settings)

    assert "-- Running upgrade 0002 -> 0003" in text and "DROP COLUMN name" in text
    assert "CREATE TABLE orders" not in text
    assert db.current_revision(settings) == "0002"
    assert sql(
        database, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'first_name'"
    ) == [(0,)]
    assert db.pending_revisions(settings) == ["0003"]


def test_a_migration_failing_half_way_leaves_the_previous_revision(
    tmp_path: Path, database: str
) -> None:
    app = app_with_revision(
        tmp_path,
        """
        def upgrade() -> None:
            op.create_table("widgets", sa.Column("id", sa.Integer, primary_key=True))
            op.execute("UPDATE users SET no_such_column = 1")


        def downgrade() -> None:
            op.drop_table("widgets")
        """,
    )
    settings = make_settings(tmp_path, database, app_dir=app)
    ui = CapturedUi()

    with pytest.raises(DeployFailure) as caught:
        # 0001..0004 in one transaction: all or nothing
        db.upgrade(settings, ui, at=migrations.where(settings))

    assert "upgrade failed in revision 0004" in caught.value.problem
    assert "no_such_column" in caught.value.problem
    assert "the database is at revision base" in caught.value.problem
    assert db.current_revision(settings) is None
    assert sql(database, "SELECT to_regclass('users'), to_regclass('widgets')") == [(None, None)]

    db.upgrade(settings, ui, "0003", at=migrations.where(settings))
    with pytest.raises(DeployFailure, match="revision 0004"):
        db.upgrade(settings, ui, at=migrations.where(settings))
    assert db.current_revision(settings) == "0003"
    assert sql(database, "SELECT to_regclass('widgets')") == [(None,)]
    journal = tmp_path / ".deploytools" / "test" / "journal.jsonl"
    assert not journal.exists()  # no journal given: the API journals only when asked


ALTER_USERS = """
    def upgrade() -> None:
        op.add_column("users", sa.Column("nickname", sa.Text, nullable=True))


    def downgrade() -> None:
        op.drop_column("users", "nickname")
    """


def test_a_lock_held_elsewhere_times_out_retries_then_fails_cleanly(
    tmp_path: Path, database: str
) -> None:
    settings = make_settings(
        tmp_path,
        database,
        app_dir=app_with_revision(tmp_path, ALTER_USERS),
        lock_timeout_ms=200,
        lock_retries=2,
    )
    ui = CapturedUi()
    db.upgrade(settings, ui, "0003", at=migrations.where(settings))

    with psycopg.connect(database) as holder:
        holder.execute("SELECT count(*) FROM users")  # an open transaction: ACCESS SHARE on users
        with pytest.raises(DeployFailure) as caught:
            db.upgrade(settings, ui, at=migrations.where(settings))
        holder.rollback()

    assert "upgrade failed in revision 0004" in caught.value.problem
    assert "lock timeout (200 ms) on every one of 3 attempt(s)" in caught.value.problem
    assert "attempt 2 of 3" in ui.text and "attempt 3 of 3" in ui.text
    assert db.current_revision(settings) == "0003"


def test_a_lock_released_during_the_retries_lets_the_migration_through(
    tmp_path: Path, database: str
) -> None:
    settings = make_settings(
        tmp_path,
        database,
        app_dir=app_with_revision(tmp_path, ALTER_USERS),
        lock_timeout_ms=200,
        lock_retries=8,
    )
    ui = CapturedUi()
    db.upgrade(settings, ui, "0003", at=migrations.where(settings))

    retried = threading.Event()

    def release_once_retried() -> None:
        """The lock goes once the first attempt gave up on it (not after a fixed time: on a
        loaded machine, and with an interpreter's start per attempt, the migration may reach
        the lock only after that)."""
        deadline = time.monotonic() + 60
        while "lock timeout: attempt 2" not in ui.text and time.monotonic() < deadline:
            if retried.wait(0.05):
                return
        holder.rollback()

    with psycopg.connect(database) as holder:
        holder.execute("SELECT count(*) FROM users")
        release = threading.Thread(target=release_once_retried)
        release.start()
        try:
            result = db.upgrade(settings, ui, at=migrations.where(settings))
        finally:
            retried.set()
            release.join()

    assert result.after == "0004"
    assert "attempt 2 of 9" in ui.text


CONCURRENT_INDEX = """
    def upgrade() -> None:
        op.execute("CREATE TABLE seen (part TEXT, lock_timeout TEXT, statement_timeout TEXT)")
        op.execute(SEEN.format("in the transaction"))
        with op.get_context().autocommit_block():
            op.create_index("ix_orders_note", "orders", ["note"], postgresql_concurrently=True)
            op.execute(SEEN.format("in the autocommit block"))


    def downgrade() -> None:
        with op.get_context().autocommit_block():
            op.drop_index("ix_orders_note", table_name="orders", postgresql_concurrently=True)
        op.drop_table("seen")


    SEEN = (
        "INSERT INTO seen SELECT '{}', current_setting('lock_timeout'), "
        "current_setting('statement_timeout')"
    )
    """


def test_a_concurrent_index_in_an_autocommit_block_is_built_under_the_timeouts(
    tmp_path: Path, database: str
) -> None:
    settings = make_settings(
        tmp_path,
        database,
        app_dir=app_with_revision(tmp_path, CONCURRENT_INDEX),
        lock_timeout_ms=250,
        statement_timeout_ms=9000,
    )
    ui = CapturedUi()

    # 0001..0003 in one transaction, then 0004's block
    result = db.upgrade(settings, ui, at=migrations.where(settings))

    assert (result.before, result.after) == (None, "0004")
    assert result.applied == ["0001", "0002", "0003", "0004"]
    assert sql(
        database,
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = 'ix_orders_note'",
    ) == [(True,)]
    assert sql(database, "SELECT * FROM seen ORDER BY part DESC") == [
        ("in the transaction", "250ms", "9s"),
        ("in the autocommit block", "250ms", "9s"),
    ]
    assert db.downgrade(settings, ui, "0003", at=migrations.where(settings)).after == "0003"
    assert sql(database, "SELECT to_regclass('ix_orders_note'), to_regclass('seen')") == [
        (None, None)
    ]


def test_an_env_py_that_leaves_its_transaction_open_fails_as_a_migration_that_did_not_move(
    tmp_path: Path, database: str
) -> None:
    """alembic's template wraps the run in ``context.begin_transaction()``; without it,
    SQLAlchemy rolls the implicit transaction back as env.py closes its connection, alembic
    says nothing, and deploytools' own read of the revision finds it unmoved."""
    app = app_with_revision(tmp_path, ALTER_USERS)
    env_py = app / "migrations/env.py"
    text = env_py.read_text()
    wrapped = "    with context.begin_transaction():\n        context.run_migrations()\n"
    assert text.count(wrapped) == 2
    env_py.write_text(text.replace(wrapped, "    context.run_migrations()\n"))
    settings = make_settings(tmp_path, database, app_dir=app)

    with pytest.raises(DeployFailure) as caught:
        db.upgrade(settings, CapturedUi(), at=migrations.where(settings))

    assert "reported success but DATABASE_URL's database is still at base" in caught.value.problem
    assert db.current_revision(settings) is None
    assert sql(database, "SELECT to_regclass('users') IS NULL") == [(True,)]


def test_downgrade_past_an_irreversible_revision_is_refused(tmp_path: Path, database: str) -> None:
    app = app_with_revision(
        tmp_path,
        """
        irreversible = "drops the audit trail; its rows cannot come back"


        def upgrade() -> None:
            op.execute("DELETE FROM orders")


        def downgrade() -> None:
            raise NotImplementedError
        """,
    )
    settings = make_settings(tmp_path, database, app_dir=app)
    ui = CapturedUi()
    db.upgrade(settings, ui, at=migrations.where(settings))

    assert not db.is_reversible(settings, "0004", "0003")
    assert db.is_reversible(settings, "0003", "base")
    with pytest.raises(OperatorError) as caught:
        db.downgrade(settings, ui, "0002", at=migrations.where(settings))
    assert "irreversible" in caught.value.problem
    assert "0004: drops the audit trail" in caught.value.problem
    assert "restore a backup" in caught.value.fix
    assert db.current_revision(settings) == "0004"


# -- bad input ------------------------------------------------------------------------------


def test_unknown_revisions_and_backups_are_refused_and_change_nothing(
    tmp_path: Path, database: str
) -> None:
    settings = migrated(tmp_path, database)
    host, ui = LocalHost(), CapturedUi()
    for call in (
        lambda: db.upgrade(settings, ui, "nope", at=migrations.where(settings)),
        lambda: db.downgrade(settings, ui, "9999", at=migrations.where(settings)),
        lambda: migrations.checkout_sql(settings, start="zz"),
    ):
        with pytest.raises(OperatorError, match="unknown revision"):
            call()
    with pytest.raises(OperatorError, match="no backup 'test-20200101T000000Z'"):
        db.restore(settings, host, ui, journal_for(settings, host), "test-20200101T000000Z")
    with pytest.raises(OperatorError, match="not a backup id"):
        db.restore(settings, host, ui, journal_for(settings, host), "../../etc/passwd")
    assert db.current_revision(settings) == "0003"
    assert backup_files(settings) == []


@pytest.mark.parametrize(
    "url", ["postgresql://app:{pw}@127.0.0.1:{port}", "postgres//app:{pw}@host/db", "{pw}"]
)
def test_an_unparsable_url_is_an_operator_error_without_the_password(
    tmp_path: Path, url: str
) -> None:
    password = "Pw-9f8e7d6c5b"
    settings = make_settings(tmp_path, url.format(pw=password, port=free_port()))
    ui = CapturedUi()
    for call in (
        lambda: db.backup(settings, LocalHost(), ui, journal_for(settings, LocalHost())),
        lambda: db.upgrade(settings, ui, at=migrations.where(settings)),
    ):
        with pytest.raises(OperatorError) as caught:
            call()
        assert password not in str(caught.value)
    assert password not in ui.text


def test_an_unreachable_server_fails_clearly_without_the_password(tmp_path: Path) -> None:
    password = "Pw-1a2b3c4d5e"
    url = f"postgresql://app:{password}@127.0.0.1:{free_port()}/app"
    settings = make_settings(tmp_path, url)
    ui = CapturedUi()

    with pytest.raises(DeployFailure) as backup_error:
        db.backup(settings, LocalHost(), ui, journal_for(settings, LocalHost()))
    with pytest.raises(DeployFailure) as migrate_error:
        db.upgrade(settings, ui, at=migrations.where(settings))

    # Both read the database with psql first (the revision, as the backup's facts do).
    for error in (backup_error, migrate_error):
        assert "cannot query the database postgresql://app@127.0.0.1" in error.value.problem
    for text in (str(backup_error.value), str(migrate_error.value), ui.text):
        assert password not in text
    assert backup_files(settings) == []


# -- helpers --------------------------------------------------------------------------------


def wait_for(found: Callable[[], int | None], what: str, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while (value := found()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def dumping(settings: Any) -> int | None:
    """The pid of the backup's pg_dump, once its partial archive exists."""
    if not any(name.endswith(".partial") for name in backup_files(settings)):
        return None
    return pg_dump_pid(str(settings.path("backups") / "test"))


def pg_dump_pid(directory: str) -> int | None:
    """The pg_dump our backup started: its argv names a file in ``directory``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"pg_dump") and any(directory.encode() in a for a in argv):
            return int(entry.name)
    return None


@contextmanager
def tiny_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` for the duration of the block (root only)."""
    require(
        os.geteuid() == 0 and shutil.which("mount") is not None,
        "root and mount(8) for a size-limited tmpfs",
        "run the tests as root (CI does)",
    )
    path.mkdir()
    argv = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    require(done.returncode == 0, "permission to mount a tmpfs", done.stderr.strip())
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True, timeout=30, check=True)
