"""The verify gate (``python -m deploytools.gate``, what ``nox -s verify`` and ``invoke verify``
run) on a whole copy of the example: it passes as it is, and each check fails on a defect
planted in the copy; bad input exits 2 before any check runs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from deploytools.gate.throwaway import server_bindir
from tests.support.cli import Run, TempProject
from tests.support.gateproject import gate_project, path_without_docker, run_gate
from tests.support.rootproject import root_project

CHECKS = {
    "config", "env-files", "compose", "plan", "flags", "migrations", "migration-roundtrip",
    "docs-drift",
}  # fmt: skip
PROD_COMPOSE = "example/docker-compose.prod.yml"
# The round trip's database: PostgreSQL where its server is installed (provisioning does)
KIND = "SQLite" if server_bindir() is None else "PostgreSQL"


@pytest.fixture
def project(tmp_path: Path) -> TempProject:
    return gate_project(tmp_path / "project")


def results(run: Run) -> list[dict[str, Any]]:
    """The gate's --json results; asserts that nothing but the JSON is on stdout."""
    found: list[dict[str, Any]] = json.loads(run.stdout)["results"]
    return found


def statuses(run: Run, check: str) -> dict[str, str]:
    return {r["target"]: r["status"] for r in results(run) if r["check"] == check}


def messages(run: Run, check: str, status: str = "fail") -> list[str]:
    return [
        item["message"]
        for r in results(run)
        if r["check"] == check
        for item in r["items"]
        if item["status"] == status
    ]


def edit(project: TempProject, name: str, old: str, new: str) -> None:
    path = project.file(name)
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new))


def test_the_example_passes_strictly_and_junit_lists_every_check(project: TempProject) -> None:
    run = run_gate(project, "--json", "--strict", "--junit", "verify.xml")

    assert run.returncode == 0, run.output
    assert json.loads(run.stdout)["ok"] is True
    assert {r["check"] for r in results(run)} == CHECKS
    needs = {r["check"]: r["needs"] for r in results(run)}
    assert needs["compose"] == ["docker"] and needs["config"] == []
    suites = ET.parse(project.file("verify.xml")).getroot()
    suite = suites.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert {c.get("classname") for c in cases} == {f"verify.{name}" for name in CHECKS}
    pairs = {(c.get("classname"), c.get("name")) for c in cases}
    assert ("verify.compose", "prod") in pairs and ("verify.flags", "flags") in pairs
    assert len(pairs) == len(cases) == int(suite.get("tests", "0")) == len(results(run))
    assert suite.get("failures") == "0" and not suite.findall("testcase/failure")
    # the one reviewed DROP COLUMN is shown, accepted, in every environment
    assert len([m for m in messages(run, "migrations", "pass") if "drop-column" in m]) == 3
    assert "all 18 checks passed" in run.stderr


def test_the_table_names_check_target_result_time_and_where(project: TempProject) -> None:
    run = run_gate(project, "--only", "config", "--only", "flags")

    assert run.returncode == 0, run.output
    header = next(line for line in run.stdout.splitlines() if "check" in line)
    assert [c.strip() for c in header.split("┃")[1:-1]] == [
        "check", "target", "result", "time", "where to look", "message"
    ]  # fmt: skip
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in run.stdout.splitlines()]
    rows = [row for row in rows if row]
    assert ["config", "prod", "ok"] == rows[1][:3] and rows[1][3].endswith(" s")
    assert rows[-1][:3] == ["flags", "flags", "ok"] and rows[-1][4] == "config/flags.toml"


def test_a_worker_of_the_development_file_missing_from_production_fails(
    project: TempProject,
) -> None:
    prod = project.file(PROD_COMPOSE).read_text()
    start, end = prod.index("  celery-worker:"), prod.index("  # --- bundled services")
    project.file("example/docker-compose.yml").write_text(
        prod[:end] + "  mailcatcher:\n    image: mailhog\n    x-dev-only: true\n"
    )
    project.file(PROD_COMPOSE).write_text(prod[:start] + prod[end:])
    project.file("docs/operations.md").parent.mkdir()
    project.file("docs/operations.md").write_text("# Ops\n\nRestart the `celery-worker` first.\n")

    run = run_gate(project, "--json", "--only", "compose", "--only", "docs-drift", "--env", "prod")

    assert run.returncode == 1, run.output
    assert statuses(run, "compose") == {"prod": "fail"}
    failed = messages(run, "compose")
    assert (
        "service 'celery-worker' of example/docker-compose.yml is not in the production files: "
        "add it there, or mark it `x-dev-only: true` in example/docker-compose.yml"
    ) in failed
    assert "service 'celery-worker' (config services) is not in the production files" in failed
    assert not any("mailcatcher" in m for m in failed)  # marked development-only
    assert statuses(run, "docs-drift") == {"prod": "warn"}
    lack = "which the production compose files lack: add the service, or correct the document"
    assert messages(run, "docs-drift", "warn") == [
        f"{doc} names service 'celery-worker', {lack}"
        for doc in ("docs/operations.md", "example/README.md")
    ]
    where = [i["where"] for r in results(run) if r["check"] == "docs-drift" for i in r["items"]]
    assert where[0] == "docs/operations.md:3" and where[1].startswith("example/README.md:")


def test_a_variable_without_a_value_and_broken_services_fail(project: TempProject) -> None:
    edit(project, PROD_COMPOSE, "image: redis:7-alpine", "image: redis:${REDIS_TAG}")
    edit(
        project,
        PROD_COMPOSE,
        "      condition: service_healthy",
        "      condition: service_healthy\n      cache:\n        condition: service_started",
    )
    edit(
        project,
        PROD_COMPOSE,
        "  postgres:\n    profiles: [bundled]\n    image: postgres:16-alpine\n",
        "  postgres:\n    profiles: [bundled]\n",
    )
    prod = project.file(PROD_COMPOSE).read_text()
    start = prod.index("    healthcheck:\n      # Through the broker")
    end = prod.index("    stop_grace_period")
    project.file(PROD_COMPOSE).write_text(prod[:start] + prod[end:])

    run = run_gate(project, "--json", "--only", "compose", "--env", "staging")

    assert run.returncode == 1, run.output
    failed = messages(run, "compose")
    assert (
        "${REDIS_TAG} has no default and no value in the env file: compose would use an empty "
        "string (give it one: ${REDIS_TAG:-value}, or set REDIS_TAG)"
    ) in failed
    assert "service 'nginx' depends on 'cache', which the production files do not have" in failed
    assert "service 'postgres' has neither image nor build" in failed
    assert len(failed) == 3, failed
    assert messages(run, "compose", "warn") == [
        "service 'celery-worker' has no healthcheck: a deploy can only wait for it to be running"
    ]


def test_a_variable_the_env_file_sets_passes(project: TempProject) -> None:
    edit(project, PROD_COMPOSE, "image: redis:7-alpine", "image: redis:${REDIS_TAG}")
    edit(project, "config/staging.env.example", "REDIS_URL=", "REDIS_TAG=7-alpine\nREDIS_URL=")

    run = run_gate(project, "--json", "--only", "compose", "--env", "staging")

    assert run.returncode == 0, run.output
    assert statuses(run, "compose") == {"staging": "pass"}


def test_a_service_without_limits_fails_where_the_config_requires_them(
    project: TempProject,
) -> None:
    compose = "example/docker-compose.prod.yml"
    edit(project, compose, "          memory: 1g\n", "")  # the worker keeps its cpu limit
    edit(project, compose, "          memory: 512m\n          cpus: \"1.0\"\n", "          {}\n")

    run = run_gate(project, "--json", "--only", "compose", "--env", "prod", "--env", "staging")

    assert run.returncode == 1, run.output
    assert messages(run, "compose") == [
        "service 'backend' has no memory and no cpu limit (compose.require_limits): set "
        "deploy.resources.limits",
        "service 'celery-worker' has no memory limit (compose.require_limits): set "
        "deploy.resources.limits",
    ]
    found = statuses(run, "compose")
    assert found["prod"] == "fail" and found["staging"] != "fail"  # staging asks for none


def test_without_a_docker_client_compose_says_what_it_did_instead(
    project: TempProject, tmp_path: Path
) -> None:
    path = path_without_docker(tmp_path)

    lenient = run_gate(project, "--json", "--only", "compose", "--env", "prod", path=path)
    strict = run_gate(
        project, "--only", "compose", "--env", "prod", "--strict", "--junit", "v.xml", path=path
    )

    assert lenient.returncode == 0, lenient.output
    assert statuses(lenient, "compose") == {"prod": "could-not-run"}
    assert messages(lenient, "compose", "could-not-run") == [
        "no Docker client here: docker compose config not run (the structural check above ran "
        "in Python)"
    ]
    assert messages(lenient, "compose", "pass") == ["5 service(s) complete"]
    assert strict.returncode == 1, strict.output
    assert "could not run" in strict.stdout
    failure = ET.parse(project.file("v.xml")).getroot().find("testsuite/testcase/failure")
    assert failure is not None and failure.get("type") == "could-not-run"


def test_a_docker_compose_error_fails_with_composes_words(project: TempProject) -> None:
    edit(project, PROD_COMPOSE, "    stop_grace_period: 60s", "    stop_grace_priod: 60s")

    run = run_gate(project, "--json", "--only", "compose", "--env", "prod")

    assert run.returncode == 1, run.output
    assert [m for m in messages(run, "compose") if "stop_grace_priod" in m], run.stdout


def test_an_example_missing_a_required_key_fails(project: TempProject) -> None:
    edit(project, "config/prod.env.example", "SECRET_KEY=<secret-key>\n", "")

    run = run_gate(project, "--json", "--only", "env-files")

    assert run.returncode == 1, run.output
    assert statuses(run, "env-files") == {"local": "pass", "staging": "pass", "prod": "fail"}
    assert any("required key SECRET_KEY is missing" in m for m in messages(run, "env-files"))


def test_the_real_env_file_is_checked_and_its_secrets_never_shown(project: TempProject) -> None:
    secret = "Zq8-weak-but-unique-7731"
    example = project.file("config/staging.env.example").read_text()
    text = example.replace("SECRET_KEY=<secret-key>", f"SECRET_KEY={secret}")
    project.write_env("staging", text + "SURPRISE=1\n")
    # docker compose names a value it cannot use: the gate's message must not show it
    edit(project, PROD_COMPOSE, '"127.0.0.1:${BACKEND_PORT:-8000}:8000"', '"${SECRET_KEY}:8000"')

    args = ["--only", "env-files", "--only", "compose", "--env", "staging"]
    run = run_gate(project, "--json", *args, "--junit", "v.xml")
    table = run_gate(project, *args)

    assert run.returncode == 1, run.output
    wheres = {i["where"].split(":")[0] for r in results(run) for i in r["items"]}
    assert {"config/staging.env.example", "config/staging.env"} <= wheres
    assert "SECRET_KEY is shorter than 32 characters" in messages(run, "env-files")
    assert "SURPRISE is not in config/staging.env.example" in messages(run, "env-files", "warn")
    assert "docker compose config: invalid hostPort: ***" in messages(run, "compose")
    for output in (run.output, table.output, project.file("v.xml").read_text()):
        assert secret not in output


def test_the_plan_shows_hosts_batches_and_services_from_the_config_alone(
    project: TempProject,
) -> None:
    run = run_gate(project, "--json", "--only", "plan", "--env", "prod", "--env", "local")

    assert run.returncode == 0, run.output
    assert messages(run, "plan", "pass") == [
        "steps: validate env -> check hosts (check host: every host at once) -> lock -> "
        "snapshot -> build -> ship images (ship images, place compose files: every host but the "
        "primary) -> lint migrations -> backup -> migrate -> keep flags -> roll out (start, wait "
        "healthy: host by host as the rollout goes) -> retire (retire: every host at once) -> "
        "verify celery -> record",
        "primary web-1 (lock, backup, migrations); rolling in 1 batch(es) [web-1, web-2], 8 at "
        "once, pause 0 s, max_fail 0, on_failure rollback",
        "web-1: backend, celery-worker",
        "web-2: backend, celery-worker",
        "steps: validate env -> lock -> snapshot -> build -> lint migrations -> backup -> "
        "migrate -> keep flags -> start -> wait healthy + verify celery -> record",
        "on this machine: backend, celery-worker",
    ]


def test_a_host_that_would_run_nothing_and_a_budget_of_every_host_warn(
    project: TempProject,
) -> None:
    edit(project, "config/deploy.toml", "max_fail = 0 ", "max_fail = 3 ")
    deploy = project.file("config/deploy.toml")
    deploy.write_text(
        deploy.read_text() + '\n[[environments.prod.hosts]]\nname = "db-1"\n'
        'address = "db-1.example.internal"\nuser = "deploy"\nroot = "/srv/exampleapp"\n'
        'roles = ["db"]\n\n[environments.prod.services.backend]\nroles = ["web"]\n'
    )

    run = run_gate(project, "--json", "--only", "plan", "--env", "prod")
    strict = run_gate(project, "--only", "plan", "--env", "prod", "--strict")

    assert run.returncode == 0, run.output
    assert messages(run, "plan", "warn") == [
        "rollout.max_fail 3 tolerates every one of the 3 hosts failing: a deploy that reached "
        "none would pass",
        "host db-1 would run no service: its roles (db) are none of the services'",
    ]
    assert strict.returncode == 1, strict.output


def test_flag_plan_errors_and_flag_debt_fail(project: TempProject) -> None:
    long_ago = date.today() - timedelta(days=45)
    yesterday = date.today() - timedelta(days=1)
    edit(
        project,
        "config/flags.toml",
        'owner = "ml-team"\nexpires = 2027-06-30',
        f'owner = "ml-team"\nexpires = {yesterday}',
    )
    edit(
        project,
        "config/flags.toml",
        "[stages.week4]\n",
        f"[stages.week4]\nnot_before = {long_ago}\n",
    )
    flags = project.file("config/flags.toml")
    flags.write_text(
        flags.read_text() + '\n[flags.dark_mode]\ndescription = "dark"\nowner = "ui"\n'
        "expires = 2099-01-01\n"
    )

    run = run_gate(project, "--json", "--only", "flags")

    assert run.returncode == 1, run.output
    assert sorted(messages(run, "flags")) == [
        "flag dark_mode: no source file of the app names it (dark_mode or FEATURE_DARK_MODE): "
        "dead flag? remove it from the plan",
        f"flag llm_summaries expired on {yesterday} (owner ml-team): remove it from the code and "
        "the plan, or move expires with a reason",
        f"flag new_checkout is on for everyone since stage week4 ({long_ago}), more than 30 days:"
        " remove the flag from the code and the plan",
    ]


def test_a_full_rollout_within_the_configured_time_is_no_debt(project: TempProject) -> None:
    recently = date.today() - timedelta(days=45)
    edit(
        project,
        "config/flags.toml",
        "[stages.week4]\n",
        f"[stages.week4]\nnot_before = {recently}\n",
    )
    flags = project.file("config/flags.toml")
    flags.write_text("[debt]\nfull_rollout_days = 60\n\n" + flags.read_text())

    run = run_gate(project, "--json", "--only", "flags")

    assert run.returncode == 0, run.output
    assert messages(run, "flags", "pass") == ["2 flag(s), no debt"]


def test_a_stage_naming_an_unknown_flag_fails(project: TempProject) -> None:
    edit(
        project,
        "config/flags.toml",
        "flags = { new_checkout = 10 }",
        "flags = { new_chekout = 10 }",
    )

    run = run_gate(project, "--json", "--only", "flags")

    assert run.returncode == 1, run.output
    [problem] = messages(run, "flags")
    assert "stages.week2.flags.new_chekout: unknown flag" in problem


def test_an_unreviewed_drop_column_fails_prod_only_through_squawk(project: TempProject) -> None:
    revision(
        project,
        "0004",
        "0003",
        "op.drop_column('orders', 'note')\n    op.execute('TRUNCATE orders')",
        "pass",
    )

    run = run_gate(project, "--json", "--only", "migrations", "--env", "prod", "--env", "local")

    assert run.returncode == 1, run.output
    assert statuses(run, "migrations") == {"prod": "fail", "local": "warn"}
    dropped = "revision 0004: squawk ban-drop-column: Dropping a column may break existing clients."
    # truncate: a rule Squawk does not have, so our own lint's
    truncated = "revision 0004: truncate: deletes every row of the table: TRUNCATE orders"
    assert messages(run, "migrations") == [dropped, truncated]
    local = [
        i for r in results(run) if r["target"] == "local" for i in r["items"]
        if "revision 0004" in i["message"]
    ]  # fmt: skip
    assert [(i["status"], i["message"]) for i in local] == [("warn", dropped), ("warn", truncated)]
    assert local[0]["where"] == "example/migrations/versions/0004_planted.py"


def revision(project: TempProject, name: str, down: str, upgrade: str, downgrade: str) -> None:
    """A revision ``name`` after ``down`` in the example's migrations."""
    project.file(f"example/migrations/versions/{name}_planted.py").write_text(
        f'"""planted"""\nimport sqlalchemy as sa\nfrom alembic import op\n\nrevision = "{name}"\n'
        f'down_revision = "{down}"\n\n\ndef upgrade():\n    {upgrade}\n\n\n'
        f"def downgrade():\n    {downgrade}\n"
    )


COUPONS = "op.create_table('coupons', sa.Column('id', sa.Integer, primary_key=True))"


def coupons(project: TempProject, downgrade: str, before: str = "") -> None:
    """Revision 0004 makes table coupons (after ``before``'s lines); its downgrade is given."""
    revision(project, "0004", "0003", f"{before}{COUPONS}", downgrade)


def test_two_heads_fail_before_any_sql_is_read(project: TempProject) -> None:
    revision(project, "0004", "0002", "op.create_table('t', sa.Column('id', sa.Integer))", "pass")

    run = run_gate(project, "--json", "--only", "migrations", "--env", "prod")

    assert run.returncode == 1, run.output
    assert messages(run, "migrations") == [
        "2 heads (0003, 0004): a deploy would not know which to migrate to; join them with "
        "`alembic merge heads`"
    ]


def test_a_downgrade_that_does_not_undo_its_upgrade_fails_the_roundtrip(
    project: TempProject,
) -> None:
    coupons(project, "op.drop_table('coupon')")

    run = run_gate(project, "--json", "--only", "migration-roundtrip")

    assert run.returncode == 1, run.output
    [failed] = messages(run, "migration-roundtrip")
    assert failed.startswith(
        f"downgrade base on a throwaway {KIND} database (local's interpreter) failed: "
        "downgrade failed in revision 0004: "
    ), failed
    assert not list(project.path.rglob("*.sqlite3"))  # the throwaway database is elsewhere


def test_a_roundtrip_that_holds_passes(project: TempProject) -> None:
    coupons(project, "op.drop_table('coupons')")

    run = run_gate(project, "--json", "--only", "migration-roundtrip", "--env", "local")

    assert run.returncode == 0, run.output
    assert messages(run, "migration-roundtrip", "pass") == [
        f"upgrade head, downgrade base, upgrade head on a throwaway {KIND} database (local's "
        "interpreter); alembic check not run: env.py gives no target_metadata (no models "
        "declared)"
    ]


def test_models_the_migrations_do_not_make_fail_the_roundtrip(project: TempProject) -> None:
    env_py = project.file("example/migrations/env.py")
    text = env_py.read_text()
    assert "        target_metadata=None,\n" in text
    models = (
        "import sqlalchemy as sa\n\nMODELS = sa.MetaData()\n"
        "sa.Table('coupons', MODELS, sa.Column('id', sa.Integer, primary_key=True))\n\n\n"
    )
    text = text.replace("        target_metadata=None,\n", "        target_metadata=MODELS,\n")
    env_py.write_text(text.replace("def configure(", models + "def configure(", 1))

    run = run_gate(project, "--json", "--only", "migration-roundtrip", "--env", "local")

    assert run.returncode == 1, run.output
    [failed] = messages(run, "migration-roundtrip")
    assert "alembic check: the models differ from the schema the migrations make: " in failed
    assert "New upgrade operations detected" in failed and "coupons" in failed, failed


@pytest.mark.parametrize(
    ("args", "setup", "said"),
    [
        (["--env", "nope"], None, "no environment 'nope' in"),
        (["--only", "compse"], None, "no check 'compse'"),
        (["--junit", "missing/verify.xml"], None, "--junit missing/verify.xml: directory missing"),
        ([], "no-config", "config file config/deploy.toml not found"),
        ([], "env-dir", "cannot read env file config/prod.env: not a regular file"),
    ],
)
def test_bad_input_exits_2_before_any_check(
    project: TempProject, args: list[str], setup: str | None, said: str
) -> None:
    if setup == "no-config":
        for path in project.file("config").iterdir():
            path.unlink()
        project.file("config").rmdir()
    elif setup == "env-dir":
        project.file("config/prod.env").mkdir()
    before = project.snapshot()

    run = run_gate(project, *args)

    assert run.returncode == 2, run.output
    assert said in run.stderr and "fix:" in run.stderr
    assert run.stdout == "" and "Traceback" not in run.stderr
    assert project.snapshot() == before


def test_invoke_verify_runs_the_gate_in_a_project_without_a_noxfile(tmp_path: Path) -> None:
    project = root_project(tmp_path / "shop")
    assert not project.file("noxfile.py").exists()

    passed = project.invoke("verify", "--junit", "verify.xml")
    both = project.invoke(
        "verify", "--env", "prod", "--env", "staging", "--only", "config", "--json"
    )
    project.file("config/prod.env.example").write_text("SHOP_API_TOKEN=<token>\nnot a line\n")
    failed = project.invoke("verify", "--env", "staging")
    unknown = project.invoke("verify", "--env", "nope")

    assert passed.returncode == 0, passed.output
    cases = ET.parse(project.file("verify.xml")).getroot().findall("testsuite/testcase")
    assert {(c.get("classname"), c.get("name")) for c in cases} == {
        (f"verify.{check}", env)
        for check in ("config", "env-files", "plan", "migrations")
        for env in ("prod", "staging")
    } | {("verify.flags", "flags"), ("verify.migration-roundtrip", "revisions")}
    assert both.returncode == 0, both.output
    assert [(r["check"], r["target"]) for r in results(both)] == [
        ("config", "prod"), ("config", "staging")
    ]  # fmt: skip
    assert failed.returncode == 1, failed.output
    assert "is not a KEY=VALUE line" in failed.stdout
    assert unknown.returncode == 2, unknown.output
    assert "no environment 'nope'" in unknown.stderr
    assert "pass --env with one of: prod, staging" in unknown.stderr
    assert "Traceback" not in passed.output + both.output + failed.output + unknown.output


def test_an_async_env_py_gets_the_throwaway_in_its_drivers_url(tmp_path: Path) -> None:
    """The trial's shape: alembic's async template reading ``postgresql+asyncpg://`` from the
    environment, its own .venv with asyncpg; ``invoke init`` wrote the config."""
    from tests.support.adoptproject import adopt_project
    from tests.support.cli import bootstrap

    project = adopt_project(tmp_path / "shop")
    init = bootstrap(project)
    assert init.returncode == 0, init.output

    run = run_gate(project, "--json", "--only", "migration-roundtrip")

    assert run.returncode == 0, run.output
    [said] = messages(run, "migration-roundtrip", "pass")
    assert said.startswith(
        f"upgrade head, downgrade base, upgrade head on a throwaway {KIND} database (prod's "
        "interpreter)"
    ), said
