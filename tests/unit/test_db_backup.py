"""The backup flow on a fake host: what runs, in which order, and what is left when it fails.

The real tools are exercised by tests/integration/test_db_postgres.py; here the host answers
like pg_dump, psql and coreutils would, so every failure point can be hit on purpose.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import pytest

from deploytools import db
from deploytools.db.database import open_database
from deploytools.db.postgres import FACTS_SCRIPT, PostgresEngine
from deploytools.errors import CommandError, DeployFailure, OperatorError
from deploytools.hosts.base import Result
from deploytools.hosts.ssh import remote_command, secret_lines
from tests.support.backups import journal_for
from tests.support.dbhost import (
    BACKUPS,
    DB_SIZE,
    DIRECTORY_ARCHIVE,
    PASSWORD,
    URL,
    FakeDbHost,
    journal,
    names,
    quiet_ui,
    settings,
)


def test_a_backup_is_dumped_verified_hashed_renamed_then_described() -> None:
    host = FakeDbHost()
    manifest = db.backup(
        settings(), host, quiet_ui(), journal_for(settings(), host), release="v1.2", url=URL
    )
    programs = [c[0] for c in host.commands]
    assert programs == [
        "psql",  # one connection for the facts and the revision
        "chmod",
        "df",
        "pg_dump",
        "chmod",
        "pg_restore",
        "wc",
        "openssl",
        "mv",
    ]
    assert "--file=-" in host.commands[0] and host.stdins[0] == FACTS_SCRIPT
    assert manifest.id.startswith("test-") and manifest.id.endswith("-v1.2")
    assert names(host) == [f"{manifest.id}.dump", f"{manifest.id}.json"]
    assert manifest.sha256 == hashlib.sha256(b"PGDMP archive bytes").hexdigest()
    assert (manifest.verified, manifest.alembic_revision, manifest.release) == (
        True,
        "0003",
        "v1.2",
    )
    assert host.modes[f"{BACKUPS}/{manifest.id}.json"] == 0o600
    assert json.loads(host.files[f"{BACKUPS}/{manifest.id}.json"])["sha256"] == manifest.sha256
    assert [r["result"] for r in journal(host)] == ["started", "ok"]


def test_the_password_reaches_the_connecting_clients_through_secret_env_only() -> None:
    host = FakeDbHost()
    db.backup(settings(), host, quiet_ui(), journal_for(settings(), host), url=URL)
    assert not any(PASSWORD in arg for argv in host.commands for arg in argv)
    assert not any(PASSWORD in value for env in host.envs for value in env.values())
    given = [(c[0], e) for c, e in zip(host.commands, host.secret_envs, strict=True) if e]
    assert given == [("psql", {"PGPASSWORD": PASSWORD}), ("pg_dump", {"PGPASSWORD": PASSWORD})]
    verification = [c[0] for c in host.commands].index("pg_restore")
    # Reading an archive needs no password at all, in any form.
    assert host.secret_envs[verification] == {} and "PGPASSFILE" not in host.envs[verification]
    assert not any(PASSWORD.encode() in data for data in host.files.values())  # no password file
    assert PASSWORD not in host.files["/srv/app/.deploytools/test/journal.jsonl"].decode()


@pytest.mark.parametrize("program", ["pg_dump", "pg_restore", "openssl", "mv"])
def test_a_failure_at_any_point_leaves_no_file_and_is_journaled(program: str) -> None:
    host = FakeDbHost(fail=program)
    with pytest.raises(DeployFailure) as caught:
        db.backup(settings(), host, quiet_ui(), journal_for(settings(), host), url=URL)
    assert "boom" in str(caught.value)
    assert names(host) == []
    assert [r["result"] for r in journal(host)] == ["started", "failed"]


def test_facts_in_the_database_service_go_through_compose_exec_with_the_script() -> None:
    host = FakeDbHost()
    compose = ["docker", "compose", "-p", "app"]
    conf = settings(dump_via_service="postgres")
    engine = PostgresEngine(conf, host, open_database(conf, url=URL), compose)

    facts = engine.facts()

    assert (facts.database, facts.size, facts.revision) == ("appdb", DB_SIZE, "0003")
    argv = host.commands[0]
    assert argv[:9] == [*compose, "exec", "-T", "-e", "PGPASSWORD", "postgres"]
    assert argv[9] == "psql" and "--file=-" in argv and host.stdins[0] == FACTS_SCRIPT
    assert host.secret_envs[0] == {"PGPASSWORD": PASSWORD} and PASSWORD not in " ".join(argv)


def test_in_the_database_service_the_remote_command_lines_only_name_the_password() -> None:
    """``dump_via_service`` on an SSH host: the exact lines sshd runs, and what goes on stdin."""
    host = FakeDbHost()
    conf = settings(dump_via_service="postgres")
    engine = PostgresEngine(conf, host, open_database(conf, url=URL), ["docker", "compose"])

    engine.dump("/b/x.dump")
    engine.verify("/b/x.dump")
    engine.restore("/b/x.dump")

    announce = """exec sh -c 'echo "deploytools-group $$" >&2 && exec "$@"' sh """
    lines = [
        (
            remote_command(argv, env, timeout=3600, secret_names=list(secret)).removeprefix(
                announce
            ),
            secret_lines(secret),
        )
        for argv, env, secret in zip(host.commands, host.envs, host.secret_envs, strict=True)
        if "pg_dump" in argv or "pg_restore" in argv
    ]
    read_secret = "sh -c 'IFS= read -r PGPASSWORD && export PGPASSWORD && exec \"$@\"' sh"
    inside = "/tmp/deploytools-x.dump"
    dbname = "--dbname=postgresql://app@127.0.0.1:5432/appdb"
    assert lines == [
        (
            f"timeout -k 5 3600 {read_secret} docker compose exec -T -e PGPASSWORD postgres"
            f" pg_dump --format=custom --file={inside} --lock-wait-timeout=5000 --no-password"
            f" {dbname}",
            f"{PASSWORD}\n".encode(),
        ),
        (
            f"timeout -k 5 3600 docker compose exec -T postgres pg_restore --file=/dev/null"
            f" {inside}",
            b"",
        ),
        (
            f"timeout -k 5 3600 env 'PGOPTIONS=-c lock_timeout=5000' {read_secret} docker compose"
            " exec -T -e PGOPTIONS -e PGPASSWORD postgres pg_restore --clean --if-exists"
            " --no-owner --single-transaction --exit-on-error --no-password"
            f" {dbname} {inside}",
            f"{PASSWORD}\n".encode(),
        ),
    ]


def test_an_asyncpg_url_reaches_the_tools_as_libpq_takes_it() -> None:
    url = (
        f"postgresql+asyncpg://app:{PASSWORD}@127.0.0.1:5432/appdb?ssl=require"
        "&command_timeout=30&options=-c%20search_path%3Dapp"
    )
    host = FakeDbHost()
    engine = PostgresEngine(settings(), host, open_database(settings(), url=url))

    engine.facts()
    engine.restore("/b/x.dump")

    dbname = "--dbname=postgresql://app@127.0.0.1:5432/appdb?sslmode=require"
    assert host.commands[0][-1] == dbname and host.commands[1][-2] == dbname
    assert host.envs == [
        {"PGOPTIONS": "-c search_path=app"},
        {"PGOPTIONS": "-c search_path=app -c lock_timeout=5000"},  # ours after the URL's
    ]
    assert host.secret_envs == [{"PGPASSWORD": PASSWORD}] * 2


class OlderLibpq(FakeDbHost):
    """Client tools whose libpq does not know an option that psycopg's newer libpq takes."""

    def run(self, argv: Sequence[str], **kwargs: Any) -> Result:
        if argv[0] == "psql":
            output = 'psql: error: invalid URI query parameter: "target_session_attrs"'
            raise CommandError(list(argv), 2, output, self.name)
        return super().run(argv, **kwargs)


def test_client_tools_that_do_not_know_an_option_of_the_url_say_so() -> None:
    url = f"{URL}?target_session_attrs=read-write&sslmode=require"
    host = OlderLibpq()
    with pytest.raises(OperatorError) as caught:
        db.backup(settings(), host, quiet_ui(), journal_for(settings(), host), url=url)
    problem = caught.value.problem
    assert problem.startswith("the PostgreSQL client tools on mem do not know an option of")
    assert 'invalid URI query parameter: "target_session_attrs"' in problem
    assert "install newer PostgreSQL client tools" in caught.value.fix
    assert "pg_dump" not in [c[0] for c in host.commands] and names(host) == []


def test_too_little_space_stops_before_the_dump() -> None:
    host = FakeDbHost(free_kb=1024)
    with pytest.raises(
        DeployFailure, match=r"not enough free space.*1\.0 MB free, 60\.0 MB needed"
    ):
        db.backup(settings(), host, quiet_ui(), journal_for(settings(), host), url=URL)
    assert "pg_dump" not in [c[0] for c in host.commands]
    assert names(host) == []


def test_skipping_verification_keeps_an_unverified_backup() -> None:
    host = FakeDbHost()
    manifest = db.backup(
        settings(), host, quiet_ui(), journal_for(settings(), host), verify=False, url=URL
    )
    assert "pg_restore" not in [c[0] for c in host.commands]
    assert not manifest.verified and manifest.verify_s is None


def test_directory_format_is_hashed_file_by_file() -> None:
    host = FakeDbHost()
    manifest = db.backup(
        settings(format="directory", jobs=2),
        host,
        quiet_ui(),
        journal_for(settings(format="directory", jobs=2), host),
        url=URL,
    )
    listing = "".join(
        f"{hashlib.sha256(DIRECTORY_ARCHIVE[name]).hexdigest()}  {name}\n"
        for name in sorted(DIRECTORY_ARCHIVE)
    )
    assert manifest.sha256 == hashlib.sha256(listing.encode()).hexdigest()
    assert manifest.size == 7 and manifest.archive == f"{manifest.id}.dir"
    assert host.listdir(f"{BACKUPS}/{manifest.archive}") == ["3001.dat.gz", "toc.dat"]
    dump = next(c for c in host.commands if c[0] == "pg_dump")
    assert "--format=directory" in dump and "--jobs=2" in dump


def test_without_openssl_the_coreutils_checksum_gives_the_same_digest() -> None:
    with_openssl = db.backup(
        settings(), FakeDbHost(), quiet_ui(), journal_for(settings(), FakeDbHost()), url=URL
    )
    host = FakeDbHost(missing="openssl")
    without = db.backup(settings(), host, quiet_ui(), journal_for(settings(), host), url=URL)
    assert without.sha256 == with_openssl.sha256
    assert [c[0] for c in host.commands if c[0] in ("openssl", "sha256sum")] == [
        "openssl",
        "sha256sum",
    ]
