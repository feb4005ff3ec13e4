"""The gate's parts without a subprocess: results, the runner, the JUnit file, compose files."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from deploytools.errors import OperatorError
from deploytools.gate import composefile, report, squawk
from deploytools.gate.project import Project, open_project
from deploytools.gate.registry import Check, Item, Result
from deploytools.gate.runner import run_checks
from deploytools.redact import Redactor
from tests.support.cli import ROOT


@pytest.fixture
def project() -> Project:
    return open_project(ROOT / "config/deploy.toml", ["local", "prod"], Redactor())


def item(status: str, message: str = "m") -> Item:
    return Item("t", status, message)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("statuses", "worst", "fails", "fails_strictly"),
    [
        (["pass"], "pass", False, False),
        (["pass", "warn"], "warn", False, True),
        (["warn", "could-not-run", "pass"], "could-not-run", False, True),
        (["could-not-run", "fail", "warn"], "fail", True, True),
    ],
)
def test_a_result_is_its_worst_item(
    statuses: list[str], worst: str, fails: bool, fails_strictly: bool
) -> None:
    result = Result("c", "t", tuple(item(s) for s in statuses), 0.1)
    assert result.status == worst
    assert result.fails(strict=False) is fails
    assert result.fails(strict=True) is fails_strictly


def test_independent_checks_run_at_the_same_time(project: Project) -> None:
    # Each job waits for the three others: run one after another, they would time out.
    barrier = threading.Barrier(4, timeout=10)

    def meet(project: Project, env: str | None) -> list[Item]:
        barrier.wait()
        return [Item(env or "project", "pass", "met")]

    checks = [Check("a", meet, "a"), Check("b", meet, "b")]

    results = run_checks(project, checks)

    assert [(r.check, r.target, r.status) for r in results] == [
        ("a", "local", "pass"), ("a", "prod", "pass"), ("b", "local", "pass"),
        ("b", "prod", "pass"),
    ]  # fmt: skip


def test_the_runner_scopes_checks_and_turns_operator_errors_into_failures(
    project: Project,
) -> None:
    def refuse(project: Project, env: str | None) -> list[Item]:
        raise OperatorError("config/x.toml: broken", "fix x")

    def silent(project: Project, env: str | None) -> list[Item]:
        return []

    checks = [
        Check("whole", refuse, "w", per_environment=False),
        Check("remote", silent, "r", applies=lambda s: s.remote),
    ]

    results = run_checks(project, checks)

    assert [(r.check, r.target, r.items) for r in results] == [
        ("whole", "project", (Item("project", "fail", "config/x.toml: broken (fix: fix x)"),)),
        ("remote", "prod", (Item("prod", "could-not-run", "the check found nothing to check"),)),
    ]


def test_junit_shows_failures_skips_and_warnings_as_ci_reads_them(tmp_path: Path) -> None:
    secret = "s3cret-value-that-leaks"
    results = [
        Result("config", "prod", (Item("prod", "pass", "valid"),), 0.01),
        Result("compose", "prod", (Item("prod", "fail", f"bad {secret}", "f.yml"),), 0.5),
        Result("compose", "staging", (Item("staging", "could-not-run", "no docker"),), 0.2),
        Result("docs-drift", "prod", (Item("prod", "warn", "README names x"),), 0.1),
    ]
    path = tmp_path / "v.xml"

    report.write_junit(path, results, Redactor([secret]), strict=False, seconds=1.0)
    lenient = ET.parse(path).getroot()
    report.write_junit(path, results, Redactor([secret]), strict=True, seconds=1.0)
    strict = ET.parse(path).getroot()

    suite = lenient.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "1")
    cases = {(c.get("classname"), c.get("name")): c for c in suite.findall("testcase")}
    failure = cases[("verify.compose", "prod")].find("failure")
    assert failure is not None and failure.get("message") == "bad ***"
    assert failure.text == "FAILED: bad *** [f.yml]"
    skipped = cases[("verify.compose", "staging")].find("skipped")
    assert skipped is not None and skipped.get("message") == "no docker"
    assert cases[("verify.docs-drift", "prod")].findtext("system-out") == (
        "warning: README names x"
    )
    assert strict.find("testsuite") is not None
    assert strict.find("testsuite").get("failures") == "3"  # type: ignore[union-attr]
    assert secret not in path.read_text()


def test_compose_variables_that_need_a_value() -> None:
    data = {
        "services": {
            "a": {
                "image": "x:${TAG}",
                "environment": ["A=$PLAIN", "B=${WITH:-default}", "C=$$ESCAPED", "D=${ALT+y}"],
                "command": ["${REQUIRED:?set it}", "${EMPTY_OK-}"],
            }
        },
        "x-app": {"image": "${IN_EXTENSION}"},
    }
    found = list(composefile.required_variables(data))
    assert found == ["TAG", "PLAIN", "REQUIRED", "IN_EXTENSION"]


def test_compose_files_merge_as_compose_merges_them(tmp_path: Path) -> None:
    base = tmp_path / "a.yml"
    base.write_text(
        "services:\n  web:\n    image: w\n    ports: ['80:80']\n    healthcheck: {test: [x]}\n"
    )
    top = tmp_path / "b.yml"
    top.write_text("services:\n  web:\n    ports: !reset []\n    healthcheck: {interval: 3s}\n")

    merged = composefile.merge(composefile.read(base, "a"), composefile.read(top, "b"))

    assert merged["services"]["web"] == {
        "image": "w", "healthcheck": {"test": ["x"], "interval": "3s"}
    }  # fmt: skip


def test_a_malformed_compose_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("services:\n  web:\n    image: [unclosed\n")
    with pytest.raises(OperatorError, match=r"^c.yml is not valid YAML at line 4\n"):
        composefile.read(path, "c.yml")


@pytest.mark.parametrize("name", ["github-verify.yml", "gitlab-verify.yml"])
def test_the_ci_examples_run_the_gate_and_keep_its_junit_file(name: str) -> None:
    from deploytools.projectscan import yaml_module

    yaml = yaml_module()
    text = (ROOT / "examples/ci" / name).read_text()
    job = yaml.safe_load(text)
    commands = (
        [step.get("run", "") for step in job["jobs"]["verify"]["steps"]]
        if "jobs" in job
        else job["verify"]["script"]
    )
    assert any("deploytools verify" in c and "--junit reports/verify.xml" in c for c in commands)
    assert "reports/verify.xml" in (
        str(job["verify"]["artifacts"]["reports"]["junit"])
        if "verify" in job
        else text.split("report_paths:")[1]
    )


def test_squawk_rules_are_accepted_by_their_name_or_ours() -> None:
    violation = squawk.Violation("0004", "ban-drop-column", "Dropping a column...", 12)
    assert violation.reviewed_by({"drop-column": "copied first"}) == "copied first"
    assert violation.reviewed_by({"ban-drop-column": "unused"}) == "unused"
    assert violation.reviewed_by({"drop-table": "other"}) is None


def test_squawk_exclusions_add_the_projects_to_ours(tmp_path: Path) -> None:
    assert squawk.excluded(tmp_path) == ["require-lock-timeout", "require-statement-timeout"]
    (tmp_path / ".squawk.toml").write_text('excluded_rules = ["prefer-identity"]\n')
    assert squawk.excluded(tmp_path)[-1] == "prefer-identity"


def test_squawk_violations_belong_to_the_revision_whose_section_holds_them(
    tmp_path: Path,
) -> None:
    sql = (
        "BEGIN;\n"
        "CREATE TABLE alembic_version (v VARCHAR(32));\n"
        "-- Running upgrade  -> 0001\n"
        "ALTER TABLE users DROP COLUMN name;\n"
        "COMMIT;\n"
    )
    found = squawk.binary()
    assert found is not None, "squawk-cli is in the test extra"
    violations = squawk.run(found, sql, tmp_path)
    # prefer-text-field on alembic's own table (line 2) is not a revision's
    assert [(v.revision, v.rule, v.line) for v in violations] == [("0001", "ban-drop-column", 4)]


def test_without_squawk_our_lint_runs_and_the_gate_says_so(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deploytools.gate.checks.migrations import check_migrations

    monkeypatch.setattr(squawk, "binary", lambda: None)
    items = check_migrations(project, "prod")
    assert [(i.status, i.message[:40]) for i in items] == [
        ("could-not-run", "squawk is not installed (pip install 'de"),
        ("pass", "revision 0003: drop-column: loses the co"),
        ("pass", "3 revision(s), no unreviewed risk in pos"),
    ]


def test_without_a_postgresql_server_the_round_trip_runs_on_sqlite(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deploytools.gate import throwaway
    from deploytools.gate.checks.migrations import check_roundtrip

    monkeypatch.setattr(throwaway, "server_bindir", lambda: None)
    [item] = check_roundtrip(project, None)
    assert (item.status, item.message) == (
        "pass",
        "upgrade head, downgrade base, upgrade head on a throwaway SQLite database (local's "
        "interpreter); alembic check not run: env.py gives no target_metadata (no models "
        "declared)",
    )


@pytest.mark.integration
def test_the_throwaway_postgresql_is_gone_after_the_round_trip() -> None:
    import tempfile

    import psycopg

    from deploytools.gate.throwaway import server_bindir, throwaway

    assert server_bindir() is not None, "provisioning installs the PostgreSQL server"
    # as the gate does: a fresh temporary directory (its parents reachable by the server's user)
    with tempfile.TemporaryDirectory() as scratch, throwaway(Path(scratch)) as database:
        with psycopg.connect(database.url, connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert database.kind == "PostgreSQL"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(database.url, connect_timeout=2)


@pytest.mark.parametrize(
    ("app", "shaped"),
    [
        ("postgresql+asyncpg://app:x@db:5432/app?ssl=require", "postgresql+asyncpg://u:p@h:1/d"),
        ("postgres://app:x@db/app", "postgres://u:p@h:1/d"),
        ("postgresql://app:x@db/app", "postgresql://u:p@h:1/d"),
        ("sqlite+aiosqlite:///var/app.db", "postgresql://u:p@h:1/d"),  # another kind: as it is
        (None, "postgresql://u:p@h:1/d"),
        ("not a url", "postgresql://u:p@h:1/d"),
    ],
)
def test_the_throwaway_url_takes_the_apps_scheme(app: str | None, shaped: str) -> None:
    from deploytools.gate.roundtrip import app_shaped

    assert app_shaped("postgresql://u:p@h:1/d", app) == shaped


def test_a_sqlite_throwaway_keeps_the_apps_sqlite_driver() -> None:
    from deploytools.gate.roundtrip import app_shaped

    shaped = app_shaped("sqlite:////tmp/x/roundtrip.sqlite3", "sqlite+aiosqlite:///var/a.db")
    assert shaped == "sqlite+aiosqlite:////tmp/x/roundtrip.sqlite3"


def test_the_gates_compose_file_puts_the_migrate_service_on_the_hosts_network(
    tmp_path: Path,
) -> None:
    from deploytools.gate.roundtrip import compose_override

    def parsed(text: str) -> dict[str, object]:
        path = tmp_path / "verify.compose.yml"
        path.write_text(text)
        return composefile.read(path, path.name)

    assert parsed(compose_override("backend", None)) == {
        "services": {"backend": {"network_mode": "host"}}
    }
    mounted = parsed(compose_override("web", "/tmp/deploytools-verify-x y"))
    assert mounted["services"]["web"]["volumes"] == [  # type: ignore[index]
        "/tmp/deploytools-verify-x y:/tmp/deploytools-verify-x y"
    ]


def test_alembic_in_the_image_gets_the_throwaway_url_through_its_environment_only(
    tmp_path: Path,
) -> None:
    """The gate's runtime adds the throwaway's URL to every alembic run as ``-e NAME``: its
    password never on the docker command line, and it wins over the compose env file's."""
    from deploytools.commands import alembic
    from deploytools.gate.roundtrip import WithUrl
    from tests.unit.test_compose_runtime import runtime as compose_runtime
    from tests.unit.test_migrate_in_release import TIMEOUTS, SecretDocker

    url = "postgresql+psycopg://deploytools:Thr0waway-pw-77@127.0.0.1:40123/postgres"
    host = SecretDocker()
    gated = WithUrl(compose_runtime(tmp_path, host), {"DATABASE_URL": url})

    gated.run_alembic("sql-prod-abc-123456", alembic.downgrade("alembic.ini", "base"), TIMEOUTS)

    argv = host.commands[-1]
    assert argv[argv.index("run") :] == [
        "run", "--rm", "--no-deps", "-T", "-e", "PGOPTIONS", "-e", "DATABASE_URL",
        "backend", "alembic", "-c", "alembic.ini", "downgrade", "base",
    ]  # fmt: skip
    assert host.secrets[-1] == {**TIMEOUTS, "DATABASE_URL": url}
    assert host.envs[-1]["RELEASE_ID"] == "sql-prod-abc-123456"
    assert not any("Thr0waway-pw-77" in " ".join(a) for a in host.commands)
