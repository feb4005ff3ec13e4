"""env.init and env.validate through the real invoke CLI, in a throw-away copy of the project."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import TempProject
from tests.support.rootproject import ENV, root_project


@pytest.fixture
def project(tmp_path: Path) -> TempProject:
    return TempProject(tmp_path)


def test_init_then_validate_local_passes_and_the_file_is_private(project: TempProject) -> None:
    init = project.invoke("env.init", "--env", "local")
    assert init.returncode == 0, init.output
    env_file = project.file("config/local.env")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "<secret-key>" not in env_file.read_text()
    secret = next(ln for ln in env_file.read_text().splitlines() if ln.startswith("SECRET_KEY="))
    assert secret.split("=", 1)[1] not in init.output  # the fresh secret is not printed either

    check = project.invoke("env.validate", "--env", "local", "--json")
    assert check.returncode == 0, check.output
    report = json.loads(check.stdout)
    assert (report["ok"], report["errors"], report["env"]) == (True, 0, "local")


def test_init_never_overwrites_and_exist_ok_leaves_the_file(project: TempProject) -> None:
    env_file = project.write_env("local", "SECRET_KEY=precious-value\n")
    before = project.snapshot()
    again = project.invoke("env.init", "--env", "local")
    assert again.returncode == 2
    assert "already exists" in again.stderr and "fix:" in again.stderr
    assert "Traceback" not in again.stderr
    assert project.snapshot() == before
    kept = project.invoke("env.init", "--env", "local", "--exist-ok")
    assert kept.returncode == 0, kept.output
    assert env_file.read_text() == "SECRET_KEY=precious-value\n"


def test_init_prod_says_what_is_left_to_fill_and_validate_lists_it(project: TempProject) -> None:
    init = project.invoke("env.init", "--env", "prod")
    assert init.returncode == 0, init.output
    assert "still to fill in: OPENAI_API_KEY" in init.stderr
    check = project.invoke("env.validate", "--env", "prod", "--json")
    assert check.returncode == 2
    findings = json.loads(check.stdout)["findings"]
    assert [(f["key"], f["rule"]) for f in findings] == [("OPENAI_API_KEY", "placeholder")]


def test_table_lists_every_problem_with_key_line_rule_problem_and_fix(project: TempProject) -> None:
    project.write_env("local", "PORT=0\nLOG_LEVEL=LOUD\nbroken\n")
    run = project.invoke("env.validate", "--env", "local")
    assert run.returncode == 2
    for column in ("level", "key", "line", "rule", "problem", "fix"):
        assert column in run.stdout
    assert "PORT is out of range (got '0')" in run.stdout
    assert "line 3 has a name but no '='" in run.stdout
    assert "required key SECRET_KEY is missing" in run.stdout
    assert "error(s)" in run.stderr and "Traceback" not in run.stderr


def test_warnings_alone_exit_0(project: TempProject) -> None:
    assert project.invoke("env.init", "--env", "local").returncode == 0
    with project.file("config/local.env").open("a") as fh:
        fh.write("EXTRA_SETTING=1\n")
    run = project.invoke("env.validate", "--env", "local", "--json")
    assert run.returncode == 0, run.output
    report = json.loads(run.stdout)
    assert (report["errors"], report["warnings"]) == (0, 1)
    assert report["findings"][0]["rule"] == "example-unknown"


def test_file_option_checks_another_file_with_the_environments_rules(project: TempProject) -> None:
    other = project.file("elsewhere.env")
    other.write_text("PORT=8000\n")
    other.chmod(0o600)
    run = project.invoke("env.validate", "--env", "local", "--file", str(other), "--json")
    report = json.loads(run.stdout)
    assert report["file"] == "elsewhere.env"
    assert {f["key"] for f in report["findings"] if f["rule"] == "required"} >= {"SECRET_KEY"}


def test_env_file_not_ignored_by_git_is_a_warning(project: TempProject) -> None:
    assert project.invoke("env.init", "--env", "local").returncode == 0
    subprocess.run(["git", "init", "-q"], cwd=project.path, check=True, timeout=30)
    run = project.invoke("env.validate", "--env", "local", "--json")
    assert run.returncode == 0, run.output
    assert [f["rule"] for f in json.loads(run.stdout)["findings"]] == ["git-ignore"]
    project.file(".gitignore").write_text("config/*.env\n")
    run = project.invoke("env.validate", "--env", "local", "--json")
    assert json.loads(run.stdout)["findings"] == []


def test_invoke_list_shows_the_env_tasks_with_help(project: TempProject) -> None:
    run = project.invoke("--list")
    assert run.returncode == 0, run.output
    assert "env.validate" in run.stdout and "env.init" in run.stdout
    helped = project.invoke("--help", "env.validate")
    for flag in ("--env", "--json", "--file"):
        assert flag in helped.stdout


def test_environment_choice_precedence_invoke_yaml_then_env_var_then_flag(
    project: TempProject,
) -> None:
    """No env file exists, so the error names the environment each layer picked."""
    project.file("invoke.yaml").write_text("deploytools:\n  env: staging\n")
    assert "staging.env not found" in project.invoke("env.validate").stderr
    by_var = project.invoke("env.validate", env={"INVOKE_DEPLOYTOOLS_ENV": "prod"})
    assert "prod.env not found" in by_var.stderr
    by_flag = project.invoke(
        "env.validate", "--env", "local", env={"INVOKE_DEPLOYTOOLS_ENV": "prod"}
    )
    assert "local.env not found" in by_flag.stderr


TOKEN = "tok_Zq8vN3rLk5wT1yXb7mP0sJ4h"  # a real-looking secret that must never be shown


def findings(run_json: str) -> set[tuple[str, str, str]]:
    return {(f["rule"], f["key"], f["severity"]) for f in json.loads(run_json)["findings"]}


def test_a_project_without_rules_gets_the_built_in_ones(tmp_path: Path) -> None:
    project = root_project(tmp_path)
    project.write_env(
        ENV, f"SHOP_API_TOKEN=changeme\nDATABASE_URL=postgresql://shop:{TOKEN}@db/shop\n", 0o644
    )
    run = project.invoke("env.validate", "--env", ENV, "--json")
    assert run.returncode == 2, run.output
    assert findings(run.stdout) == {
        ("placeholder", "SHOP_API_TOKEN", "error"),  # a secret by its name, never filled in
        ("file-mode", "", "error"),  # it holds secrets and others may read it
    }
    assert TOKEN not in run.output and "Traceback" not in run.output


def test_a_projects_rules_add_to_and_override_the_built_in_ones(tmp_path: Path) -> None:
    project = root_project(tmp_path)
    project.file("config/env.rules.toml").write_text(
        "[severity]\nfile-mode = 'warning'\n"
        "[keys.SHOP_MODE]\nrequired = true\nchoices = ['live', 'demo']\n"
        "[placeholders.patterns]\nellipsis = false\n"
    )
    project.write_env(ENV, f"SHOP_API_TOKEN={TOKEN}...\nSHOP_MODE=test\n", 0o644)
    run = project.invoke("env.validate", "--env", ENV, "--json")
    assert run.returncode == 2, run.output
    assert findings(run.stdout) == {
        ("format", "SHOP_MODE", "error"),
        ("file-mode", "", "warning"),
        ("example-unknown", "SHOP_MODE", "warning"),
        ("example-missing", "DATABASE_URL", "warning"),
    }
    assert TOKEN not in run.output
