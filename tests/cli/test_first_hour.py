"""What a newcomer meets in the first hour (issue 12, item 10), through the real invoke CLI at
80 columns: output piped (as a CI log or `| less` gets it), or on a terminal (FORCE_COLOR makes
rich treat the pipe as one). Two real deploys of the example on the process runtime (SQLite,
Celery's filesystem broker: no server): the first has no database to back up yet, the second
takes a backup and leaves the first release as the one to roll back to.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.cli import Run
from tests.support.deployproject import PROCESS_ENV, DeployProject, process_env
from tests.support.procs import free_port

ENV = PROCESS_ENV
NARROW = {"COLUMNS": "80"}
TERMINAL = {"COLUMNS": "80", "FORCE_COLOR": "1"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STAMP = re.compile(r"\d{8}T\d{6}Z")


@dataclass(frozen=True)
class Deployed:
    project: DeployProject
    first: Run  # no database yet: the backup is skipped
    second: Run  # backs up, runs now
    old: str  # the first release's tag: the one to roll back to
    running: str
    backup: str  # the second deploy's backup id


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    project = DeployProject(tmp_path_factory.mktemp("first-hour") / "app")
    project.configure({ENV: process_env()})
    project.init_env(ENV, {"PORT": str(free_port())})
    try:
        first = project.invoke("deploy", "--env", ENV, env=NARROW, timeout=300)
        assert first.returncode == 0, first.output
        second = project.invoke("deploy", "--env", ENV, env=NARROW, timeout=300)
        assert second.returncode == 0, second.output
        old, running = (r["tag"] for r in project.releases(ENV))
        backup = project.releases(ENV)[-1]["backup"]
        yield Deployed(project, first, second, old, running, backup)
    finally:
        project.invoke("stack.down", "--env", ENV)


def _plain(text: str) -> str:
    return ANSI.sub("", text)


def _ids_whole(text: str, *ids: str) -> None:
    for name in ids:
        assert name in text, (name, text)
    assert "…" not in text, text


def test_ids_are_whole_in_tables_piped_at_80_columns(deployed: Deployed) -> None:
    project = deployed.project
    releases = project.invoke("releases", "--env", ENV, env=NARROW)
    backups = project.invoke("db.backups", "--env", ENV, env=NARROW)
    history = project.invoke("history", "--env", ENV, env=NARROW)
    for run in (releases, backups, history):
        assert run.returncode == 0, run.output
    _ids_whole(releases.stdout, deployed.old, deployed.running, deployed.backup)
    _ids_whole(backups.stdout, deployed.backup, deployed.running)
    _ids_whole(history.stdout, deployed.running)
    # piped: the table keeps its width, whatever COLUMNS says (every column is there)
    assert max(len(line) for line in releases.stdout.splitlines()) > 80
    assert "operator" in releases.stdout and "left out" not in releases.output
    # nor is a message on stderr broken at 80 columns in a log
    assert f"all on release {deployed.running}" in deployed.second.stderr


def test_ids_are_whole_on_an_80_column_terminal(deployed: Deployed) -> None:
    project = deployed.project
    releases = project.invoke("releases", "--env", ENV, env=TERMINAL)
    backups = project.invoke("db.backups", "--env", ENV, env=TERMINAL)
    for run in (releases, backups):
        assert run.returncode == 0, run.output
        lines = _plain(run.stdout).splitlines()
        assert max(len(line) for line in lines) <= 80, run.stdout
    # the tags whole; columns that do not fit beside them are left out, and said so
    _ids_whole(_plain(releases.stdout), deployed.old, deployed.running)
    assert "left out at this width:" in _plain(releases.stderr)
    _ids_whole(_plain(backups.stdout), deployed.backup)


def test_a_skipped_step_says_skipped_and_why(deployed: Deployed) -> None:
    first = deployed.first
    assert "- backup skipped (no database yet at " in first.stderr, first.stderr
    assert "backup done" not in first.output
    assert ": 11 done, 1 skipped (backup)" in first.stdout, first.stdout
    events = [e for e in deployed.project.journal(ENV) if e.get("step") == "backup"]
    ends = [e for e in events if e["kind"] != "step.start"]
    assert ends[0]["kind"] == "step.skipped" and "no database yet" in ends[0]["skipped"], ends
    assert ends[1]["kind"] == "step.done" and ends[1]["backup"] == deployed.backup


def test_each_step_is_shown_once_then_a_short_summary(deployed: Deployed) -> None:
    second = deployed.second
    for step in ("validate env", "lock", "migrate", "start", "wait healthy", "record"):
        ended = [line for line in second.output.splitlines() if line.startswith(f"✓ {step} ")]
        assert len(ended) == 1, (step, second.output)
        assert not re.search(rf"│\s*{step}\s*│", second.output), second.output
    summary = second.stdout.strip().splitlines()
    assert len(summary) == 1 and re.fullmatch(r"deploy summary \(\d+\.\ds\): 12 done", summary[0])


def test_backup_ids_carry_one_timestamp_and_old_ids_still_work(deployed: Deployed) -> None:
    backup, running = deployed.backup, deployed.running
    assert len(STAMP.findall(backup)) == 1, backup
    assert backup == f"{ENV}-{STAMP.search(backup)[0]}-{running.rsplit('-', 1)[1]}"  # type: ignore[index]
    backups = deployed.project.invoke("db.backups", "--env", ENV, env=NARROW)
    header = next(line for line in backups.stdout.splitlines() if " id " in line)
    assert "created" not in header  # the id says when: no column repeats it
    # A backup named the way earlier versions named them is listed and verified as before.
    directory = deployed.project.file(f"backups/{ENV}")
    manifest = json.loads((directory / f"{backup}.json").read_text())
    old_id = f"{ENV}-20260101T000000Z-release-{ENV}-20260101T000000Z-0123456"
    shutil.copy2(directory / manifest["archive"], directory / f"{old_id}.sqlite3")
    old = {**manifest, "id": old_id, "archive": f"{old_id}.sqlite3"}
    (directory / f"{old_id}.json").write_text(json.dumps(old))
    try:
        listed = deployed.project.invoke("db.backups", "--env", ENV, env=NARROW)
        assert old_id in listed.stdout, listed.output
        verified = deployed.project.invoke("db.verify", "--env", ENV, "--backup", old_id)
        assert verified.returncode == 0, verified.output
    finally:
        for name in (f"{old_id}.json", f"{old_id}.sqlite3"):
            (directory / name).unlink()


def test_the_dry_run_names_the_backup_method_the_run_uses(deployed: Deployed) -> None:
    run = deployed.project.invoke("deploy", "--env", ENV, "--dry-run", env=NARROW)
    assert run.returncode == 0, run.output
    assert "by SQLite online backup into backups/" in run.stdout, run.stdout
    assert "custom format" not in run.stdout


def _hold_lock(project: DeployProject) -> Any:
    lock = project.state_dir(ENV) / "deploy.lock"
    lock.mkdir()
    holder = {
        "user": "alice",
        "machine": socket.gethostname(),
        "pid": os.getpid(),
        "since": time.time(),
        "command": f"invoke deploy --env {ENV}",
        "release": None,
    }
    (lock / "holder.json").write_text(json.dumps(holder))
    return lock


@pytest.mark.parametrize(
    "argv",
    [["deploy"], ["rollback", "--tag", "OLD"], ["db.backup"]],
    ids=lambda argv: argv[0],
)
def test_the_lock_conflict_names_the_environment_once(
    deployed: Deployed, argv: list[str]
) -> None:
    lock = _hold_lock(deployed.project)
    try:
        args = [deployed.old if a == "OLD" else a for a in argv]
        run = deployed.project.invoke(*args, "--env", ENV)  # wide: a message is one line
    finally:
        shutil.rmtree(lock)
    assert run.returncode == 1, run.output
    assert run.output.count("is held by alice@") == 1, run.output
    assert run.output.count(f"lock.release --force --env {ENV}") == 1, run.output
    assert f"the deploy lock of environment {ENV} (" in run.stderr, run.stderr


def test_the_rollback_tags_offered_leave_out_the_running_one(deployed: Deployed) -> None:
    project = deployed.project
    refused = project.invoke("rollback", "--env", ENV, "--tag", "v-nope", env=NARROW)
    assert refused.returncode == 2, refused.output
    fix = next(line for line in refused.stderr.splitlines() if line.startswith("  fix: "))
    assert deployed.old in fix and deployed.running not in fix, fix
    releases = project.invoke("releases", "--env", ENV, env=NARROW)
    offered = next(line for line in releases.stderr.splitlines() if "roll back" in line)
    assert deployed.old in offered and deployed.running not in offered, offered
