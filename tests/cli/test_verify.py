"""``python -m deploytools.verify`` (what ``nox -s verify`` runs) in a copy of the project, and
``invoke verify`` in a project that has no noxfile."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploytools import verify
from deploytools.verify import Check, Outcome, Project
from tests.support.cli import ROOT, TempProject
from tests.support.rootproject import root_project


def run_verify(project: TempProject, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "deploytools.verify", *args],
        cwd=project.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> TempProject:
    return TempProject(tmp_path)


def test_the_project_passes(project: TempProject) -> None:
    run = run_verify(project)
    assert run.returncode == 0, run.stdout + run.stderr
    # config, example, and migrations (one reviewed warning + a summary) for 3 environments
    assert run.stdout.count(" ok ") == 12
    assert run.stdout.count("drop-column") == 3
    assert "all 12 checks passed" in run.stderr


def test_a_broken_example_fails_with_every_problem(project: TempProject) -> None:
    example = project.file("config/staging.env.example")
    text = example.read_text().replace("SECRET_KEY=<secret-key>\n", "")
    example.write_text(text + "SURPRISE=1\nnot a line\nRELEASE_ID=v1\n")
    run = run_verify(project)
    assert run.returncode == 1
    for problem in (
        "required key SECRET_KEY is missing",
        "SURPRISE has no rule in env.rules.toml",
        "is not a KEY=VALUE line",
        "RELEASE_ID is set by the deploy",
    ):
        assert problem in run.stdout, run.stdout
    assert "FAILED" in run.stdout and "Traceback" not in run.stderr


def test_a_config_error_fails_and_names_the_key(project: TempProject) -> None:
    deploy = project.file("config/deploy.toml")
    deploy.write_text(
        deploy.read_text().replace("[environments.prod.database]", "[environments.prod.databse]")
    )
    run = run_verify(project, "--only", "config")
    assert run.returncode == 1
    assert "environments.prod.databse" in run.stdout
    assert " ok " in run.stdout  # local and staging still pass


def test_two_environments_with_one_compose_project_on_one_host_fail_both(
    project: TempProject,
) -> None:
    deploy = project.file("config/deploy.toml")
    text = deploy.read_text()
    text = text.replace('project_name = "exampleapp-staging"', 'project_name = "exampleapp"')
    deploy.write_text(text.replace("staging-1.example.internal", "web-2.example.internal"))
    clash = (
        "environments.{}.compose.project_name and environments.{}.compose.project_name are "
        "both 'exampleapp' on the same Docker engine (web-2.example.internal:22)"
    )

    run = run_verify(project, "--only", "config")
    task = project.invoke("stack.status", "--env", "staging")

    assert run.returncode == 1
    cells = [[c.strip() for c in line.split("│")] for line in run.stdout.splitlines()]
    results = {row[2]: row[3] for row in cells if len(row) > 4 and row[1] == "config"}
    assert results == {"local": "ok", "prod": "FAILED", "staging": "FAILED"}
    assert "environments.prod.compose.project_name and" in run.stdout
    assert task.returncode == 2, task.output
    assert clash.format("staging", "prod") in " ".join(task.stderr.split())
    assert "Traceback" not in task.stderr + run.stderr
    assert not project.file(".deploytools").exists()  # nothing done


def test_a_missing_config_fails_without_traceback(tmp_path: Path) -> None:
    project = TempProject(tmp_path)
    project.file("config/deploy.toml").unlink()
    run = run_verify(project)
    assert run.returncode == 1
    assert "config file config/deploy.toml not found" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_new_check_is_one_more_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    def backups(project: Project) -> list[Outcome]:
        return [Outcome("backups/", False, "no verified backup in 7 days")]

    monkeypatch.setattr(verify, "CHECKS", [*verify.CHECKS, Check("backups", backups)])
    project = Project(ROOT / "config/deploy.toml", ["local"])
    results = verify.run(project, verify.CHECKS)
    assert [(name, o.ok) for name, o in results][:2] == [("config", True), ("env examples", True)]
    assert {name for name, _ in results} == {"config", "env examples", "migrations", "backups"}
    assert results[-1] == ("backups", Outcome("backups/", False, "no verified backup in 7 days"))


def test_invoke_verify_runs_the_gate_in_a_project_without_a_noxfile(tmp_path: Path) -> None:
    project = root_project(tmp_path / "shop")
    assert not project.file("noxfile.py").exists()

    passed = project.invoke("verify")
    one = project.invoke("verify", "--env", "prod", "--only", "config")
    project.file("config/prod.env.example").write_text("SHOP_API_TOKEN=<token>\nnot a line\n")
    failed = project.invoke("verify", "--env", "staging")
    unknown = project.invoke("verify", "--env", "nope")

    assert passed.returncode == 0, passed.output
    assert "all 6 checks passed" in passed.stderr  # config, example, migrations x prod, staging
    assert one.returncode == 0, one.output
    assert "all 1 checks passed" in one.stderr
    assert failed.returncode == 1, failed.output
    assert "is not a KEY=VALUE line" in failed.stdout
    assert unknown.returncode == 2, unknown.output
    assert "no environment 'nope'" in unknown.stderr
    assert "pass --env with one of: prod, staging" in unknown.stderr
    assert "Traceback" not in passed.output + one.output + failed.output + unknown.output
