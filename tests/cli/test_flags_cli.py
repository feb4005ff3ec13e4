"""flags.list and flags.set on a local process environment: the state file apps read, the
journal before and after, --dry-run and bad input changing nothing (exit 2, no traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploytools.flagclient import FlagClient
from deploytools.flags.bucketing import flag_bucket
from tests.support.cli import Run, TempProject


@pytest.fixture
def project(tmp_path: Path) -> TempProject:
    project = TempProject(tmp_path)
    project.write_env("local", "ENVIRONMENT=development\n")
    return project


def state_of(project: TempProject) -> Path:
    return project.file(".deploytools/local/flags.json")


def journal(project: TempProject) -> list[dict[str, object]]:
    path = project.file(".deploytools/local/journal.jsonl")
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if '"flags.' in line]


def listed(project: TempProject) -> dict[str, dict[str, object]]:
    run = project.invoke("flags.list", "--env", "local", "--json")
    assert run.returncode == 0, run.output
    return {row["flag"]: row for row in json.loads(run.stdout)}


def test_set_then_list_and_the_app_reads_it(project: TempProject) -> None:
    before = listed(project)
    assert before["new_checkout"]["state"] == "off" and before["new_checkout"]["set"] is False
    run = project.invoke("flags.set", "new_checkout", "10", "--env", "local")
    assert run.returncode == 0, run.output
    assert "new_checkout: not set -> 10 %" in run.stderr
    row = listed(project)["new_checkout"]
    assert (row["state"], row["percent"], row["set"]) == ("10 %", 10, True)
    assert "@" in str(row["changed_by"])  # user@machine
    client = FlagClient(state_of(project), environ={})
    keys = [f"user-{i}" for i in range(500)]
    assert [client.is_enabled("new_checkout", k) for k in keys] == [
        flag_bucket("new_checkout", k) < 10 for k in keys
    ]
    assert [(r["result"], r.get("from"), r["to"]) for r in journal(project)] == [
        ("started", None, 10),
        ("ok", None, 10),
    ]
    run = project.invoke("flags.set", "new_checkout", "on", "--env", "local")
    assert run.returncode == 0 and "new_checkout: 10 % -> on" in run.stderr, run.output
    assert journal(project)[-1]["from"] == 10
    assert client.is_enabled("new_checkout")


def test_dry_run_changes_nothing(project: TempProject) -> None:
    run = project.invoke("flags.set", "new_checkout", "50", "--env", "local", "--dry-run")
    assert run.returncode == 0, run.output
    assert "would set new_checkout: not set -> 50 %" in run.output
    assert not state_of(project).exists() and journal(project) == []


def bad(project: TempProject, *argv: str) -> Run:
    return project.invoke("flags.set", *argv, "--env", "local")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["nope", "10"], "unknown flag 'nope' (the flags of config/flags.toml are: new_checkout"),
        (["new_checkout", "110"], "'110': a percentage must be between 0 and 100"),
        (["new_checkout", "--value=-5"], "'-5': a percentage must be between 0 and 100"),
        (["new_checkout", "yes please"], "'yes please': must be on, off or a percentage"),
    ],
)
def test_bad_input_exit_2_nothing_changed(
    project: TempProject, argv: list[str], words: str
) -> None:
    assert bad(project, "new_checkout", "on").returncode == 0
    state, lines = state_of(project).read_bytes(), journal(project)
    run = bad(project, *argv)
    assert run.returncode == 2, run.output
    assert words in run.stderr and "Traceback" not in run.output
    assert state_of(project).read_bytes() == state and journal(project) == lines


def test_a_state_file_edited_into_invalid_json(project: TempProject) -> None:
    state_of(project).parent.mkdir(parents=True)
    state_of(project).write_text('{"flags": ')
    for argv in (["flags.set", "new_checkout", "on"], ["flags.list"]):
        run = project.invoke(*argv, "--env", "local")
        assert run.returncode == 2, run.output
        assert "flags.json: not valid JSON (line 1, column 11" in run.stderr
        assert "Traceback" not in run.output
    assert state_of(project).read_text() == '{"flags": ' and journal(project) == []


def test_a_broken_plan_names_file_and_key(project: TempProject) -> None:
    plan = project.file("config/flags.toml")
    plan.write_text(plan.read_text().replace("new_checkout = 50", "new_checkout = 150"))
    run = project.invoke("flags.list", "--env", "local")
    assert run.returncode == 2, run.output
    assert "flags.toml: 1 problem(s)" in run.stderr
    assert "stages.week3.flags.new_checkout: a percentage must be between 0 and 100" in run.stderr
