"""flags.* on a local process environment: the state file apps read, the journal before and
after, the plan's stages, the kill switch, --dry-run and bad input changing nothing (exit 2,
no traceback)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deploytools.flagclient import FlagClient
from deploytools.flags.bucketing import flag_bucket
from tests.support.cli import Run, TempProject


@pytest.fixture
def project(tmp_path: Path) -> TempProject:
    """The repository's plan without soaks and guards: nothing runs here to watch (the guards
    have their tests with a running app, tests/integration/test_flags_start.py)."""
    project = TempProject(tmp_path)
    project.write_env("local", "ENVIRONMENT=development\n")
    plan = project.file("config/flags.toml")
    text = re.sub(r"^soak = \d+\n", "", plan.read_text(), flags=re.M)
    plan.write_text(re.sub(r"^guards = \[.*?\]\n", "", text, flags=re.M | re.S))
    assert not re.search(r"^(guards|soak) =", plan.read_text(), flags=re.M)
    return project


def state_of(project: TempProject) -> Path:
    return project.file(".deploytools/local/flags/flags.json")


def journal(project: TempProject) -> list[dict[str, object]]:
    path = project.file(".deploytools/local/journal.jsonl")
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if '"flags.' in line]


def listed(project: TempProject) -> dict[str, dict[str, object]]:
    run = project.invoke("flags.list", "--env", "local", "--json")
    assert run.returncode == 0, run.output
    found = json.loads(run.stdout)
    assert found["hosts_differing"] == {}
    return {row["flag"]: row for row in found["flags"]}


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
    move = {"new_checkout": {"from": None, "to": 10}}
    assert [(r["kind"], r["result"], r["changes"]) for r in journal(project)] == [
        ("flags.set", "started", move),
        ("flags.set", "ok", move),
    ]
    run = project.invoke("flags.set", "new_checkout", "on", "--env", "local")
    assert run.returncode == 0 and "new_checkout: 10 % -> on" in run.stderr, run.output
    assert journal(project)[-1]["changes"] == {"new_checkout": {"from": 10, "to": 100}}
    assert client.is_enabled("new_checkout")


def test_dry_run_changes_nothing(project: TempProject) -> None:
    run = project.invoke("flags.set", "new_checkout", "50", "--env", "local", "--dry-run")
    assert run.returncode == 0, run.output
    assert "would change: new_checkout: not set -> 50 %" in run.output
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


def flags_now(project: TempProject) -> dict[str, int]:
    return {name: int(row["percent"]) for name, row in listed(project).items()}  # type: ignore[call-overload]


def test_stages_forward_one_at_a_time_and_back_at_any_time(project: TempProject) -> None:
    skip = project.invoke("flags.stage", "week3", "--env", "local")
    assert skip.returncode == 2, skip.output
    assert "stage week3 skips week1, week2 (the environment is at no stage yet)" in skip.stderr
    assert "pass --force" in skip.stderr and not state_of(project).exists()
    for stage, expected in (("week1", 0), ("week2", 10), ("week3", 50)):
        run = project.invoke("flags.stage", stage, "--env", "local")
        assert run.returncode == 0, run.output
        assert flags_now(project)["new_checkout"] == expected
        assert listed(project)["new_checkout"]["stage"] == stage
    back = project.invoke("flags.stage", "week1", "--env", "local")
    assert back.returncode == 0, back.output
    assert "new_checkout: 50 % -> off" in back.stderr and "stage: week3 -> week1" in back.stderr
    forced = project.invoke("flags.stage", "week4", "--env", "local", "--force")
    assert forced.returncode == 0, forced.output
    assert flags_now(project) == {"new_checkout": 100, "llm_summaries": 10}


def test_advance_goes_one_stage_then_refuses_after_a_kill(project: TempProject) -> None:
    for stage in ("week1", "week2"):
        run = project.invoke("flags.advance", "--env", "local")
        assert run.returncode == 0, run.output
        assert listed(project)["new_checkout"]["stage"] == stage
    kill = project.invoke("flags.kill", "new_checkout", "--env", "local")
    assert kill.returncode == 0 and "killed: new_checkout: 10 % -> off" in kill.stderr, kill.output
    state = state_of(project).read_bytes()
    run = project.invoke("flags.advance", "--env", "local")
    assert run.returncode == 1, run.output
    assert "new_checkout is off, stage week2 set 10 %" in run.stderr
    assert state_of(project).read_bytes() == state  # the kill holds
    assert project.invoke("flags.stage", "week3", "--env", "local").returncode == 0
    assert project.invoke("flags.stage", "week4", "--env", "local").returncode == 0
    last = project.invoke("flags.advance", "--env", "local")
    assert last.returncode == 0 and "last stage: nothing to advance" in last.stdout, last.output


def test_advance_and_stage_wait_for_not_before(project: TempProject) -> None:
    plan = project.file("config/flags.toml")
    plan.write_text(
        plan.read_text().replace("[stages.week2]\n", "[stages.week2]\nnot_before = 2999-01-01\n")
    )
    assert project.invoke("flags.stage", "week1", "--env", "local").returncode == 0
    state = state_of(project).read_bytes()
    run = project.invoke("flags.advance", "--env", "local")
    assert (
        run.returncode == 1 and "stage week2 is not to be applied before 2999-01-01" in run.stderr
    )
    stage = project.invoke("flags.stage", "week2", "--env", "local")
    assert stage.returncode == 2 and "not to be applied before 2999-01-01" in stage.stderr
    assert state_of(project).read_bytes() == state
    assert project.invoke("flags.stage", "week2", "--env", "local", "--force").returncode == 0
    assert flags_now(project)["new_checkout"] == 10


def test_kill_all_and_history(project: TempProject) -> None:
    assert project.invoke("flags.stage", "week4", "--force", "--env", "local").returncode == 0
    dry = project.invoke("flags.kill", "--all", "--env", "local", "--dry-run")
    assert dry.returncode == 0 and "would kill: new_checkout: on -> off" in dry.stdout, dry.output
    assert flags_now(project) == {"new_checkout": 100, "llm_summaries": 10}
    run = project.invoke("flags.kill", "--all", "--env", "local")
    assert run.returncode == 0, run.output
    assert flags_now(project) == {"new_checkout": 0, "llm_summaries": 0}
    assert listed(project)["new_checkout"]["stage"] == "week4"  # a kill keeps the stage
    history = project.invoke("flags.history", "--env", "local", "--json")
    assert history.returncode == 0, history.output
    rows = json.loads(history.stdout)
    assert [(r["action"], r["result"]) for r in rows] == [("stage", "ok"), ("kill", "ok")]
    assert rows[1]["changes"] == {
        "llm_summaries": {"from": 10, "to": 0},
        "new_checkout": {"from": 100, "to": 0},
    }
    only = project.invoke("flags.history", "--env", "local", "--flag", "llm_summaries")
    assert only.returncode == 0 and "llm_summaries 10 % -> off" in only.stdout, only.output


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["flags.stage", "week9"], "unknown stage 'week9' (the stages of config/flags.toml are"),
        (["flags.kill", "new_checkout", "--all"], "flags.kill needs one flag name or --all"),
        (["flags.kill", "nope"], "unknown flag 'nope'"),
        (["flags.history", "--flag", "nope"], "unknown flag 'nope'"),
    ],
)
def test_bad_stage_and_kill_input(project: TempProject, argv: list[str], words: str) -> None:
    run = project.invoke(*argv, "--env", "local")
    assert run.returncode == 2, run.output
    assert words in run.stderr and "Traceback" not in run.output
    assert not state_of(project).exists() and journal(project) == []


def test_a_kill_switch_the_plan_forbids(project: TempProject) -> None:
    plan = project.file("config/flags.toml")
    plan.write_text(
        plan.read_text().replace(
            'live = ["backend"]\n', 'live = ["backend"]\nkill_switch = false\n', 1
        )
    )
    assert project.invoke("flags.stage", "week4", "--force", "--env", "local").returncode == 0
    named = project.invoke("flags.kill", "llm_summaries", "--env", "local")
    assert named.returncode == 2 and "kill_switch = false" in named.stderr, named.output
    run = project.invoke("flags.kill", "--all", "--env", "local")
    assert run.returncode == 0, run.output
    assert "llm_summaries: kill_switch = false, left as it is" in run.stderr
    assert flags_now(project) == {"new_checkout": 0, "llm_summaries": 10}


def test_a_change_while_another_run_holds_the_lock(project: TempProject) -> None:
    lock = project.file(".deploytools/local/deploy.lock")
    lock.mkdir(parents=True)
    (lock / "holder.json").write_text(
        json.dumps(
            {"user": "ann", "machine": "elsewhere", "pid": 1, "since": 4e9, "command": "deploy"}
        )
    )
    run = project.invoke("flags.stage", "week1", "--env", "local")
    assert run.returncode == 2, run.output
    assert "the deploy lock of environment local" in run.stderr and "ann@elsewhere" in run.stderr
    assert not state_of(project).exists() and journal(project) == []
    kill = project.invoke("flags.kill", "new_checkout", "--env", "local")
    assert kill.returncode == 0, kill.output  # a kill does not wait for a deploy
    assert flags_now(project)["new_checkout"] == 0


def ok(run: Run) -> None:
    assert run.returncode == 0, run.output


def kill_seeing_modules(project: TempProject, *args: str) -> tuple[Run, set[str]]:
    """``invoke flags.kill ARGS --env local`` as an operator runs it, and the modules it
    had imported when it exited."""
    loaded = project.path / "modules.json"
    code = (
        "import atexit, json, runpy, sys\n"
        f"out = open({str(loaded)!r}, 'w')\n"
        "atexit.register(lambda: out.write(json.dumps(list(sys.modules))))\n"
        f"sys.argv = ['invoke', 'flags.kill', *{list(args)!r}, '--env', 'local']\n"
        "runpy.run_module('invoke', run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project.path,
        env=project.environ(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    run = Run(done.args, done.returncode, done.stdout, done.stderr)
    return run, set(json.loads(loaded.read_text()))


def test_a_kill_after_a_flags_command_writes_before_loading_the_config(
    project: TempProject,
) -> None:
    """The kill card (flags/killcard.py): the last flags command's view of the environment,
    used while the config and the plan are byte for byte what it loaded."""
    ok(project.invoke("flags.set", "new_checkout", "on", "--env", "local"))
    run, modules = kill_seeing_modules(project, "new_checkout")
    assert run.returncode == 0 and "killed: new_checkout: on -> off" in run.stderr, run.output
    assert not {"pydantic", "deploytools.config"} & modules  # rich: for its last line only
    assert flags_now(project)["new_checkout"] == 0
    move = {"new_checkout": {"from": 100, "to": 0}}
    assert [(r["kind"], r["result"], r["changes"]) for r in journal(project)[-2:]] == [
        ("flags.kill", "started", move),
        ("flags.kill", "ok", move),
    ]
    config = project.file("config/deploy.toml")
    config.write_text(config.read_text() + "\n# a comment is a change too\n")
    ok(project.invoke("flags.set", "new_checkout", "on", "--env", "local"))  # keeps a new card
    config.write_text(config.read_text() + "# and another\n")
    run, modules = kill_seeing_modules(project, "new_checkout")
    assert run.returncode == 0 and "killed: new_checkout: on -> off" in run.stderr, run.output
    assert "deploytools.config" in modules  # no card of this config: validated first
    ok(project.invoke("flags.set", "new_checkout", "on", "--env", "local"))
    run, modules = kill_seeing_modules(project, "--all")
    assert run.returncode == 0 and "deploytools.config" not in modules, run.output
    assert flags_now(project) == {"new_checkout": 0, "llm_summaries": 0}


def test_a_kill_of_a_flag_read_at_start_loads_the_config(project: TempProject) -> None:
    """Such a kill rewrites the env file and recreates services: not by card."""
    plan = project.file("config/flags.toml")
    plan.write_text(plan.read_text().replace('live = ["backend"]\n', 'start = ["backend"]\n', 1))
    project.write_env("local", "ENVIRONMENT=development\nFEATURE_LLM_SUMMARIES=0\n")
    ok(project.invoke("flags.list", "--env", "local"))
    run, modules = kill_seeing_modules(project, "llm_summaries")
    assert run.returncode == 0, run.output
    assert "deploytools.config" in modules
    assert "FEATURE_LLM_SUMMARIES=0" in project.file("config/local.env").read_text()
