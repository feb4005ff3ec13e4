"""A task refused by a held deploy lock says how to go on with options that task has."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path

import pytest

from tests.support.cli import TempProject

# Tasks that take the deploy lock and reach it without a database (db.restore and db.downgrade
# look at the database first; they share _support.locked with these).
LOCKING = [["db.backup"], ["db.prune"], ["db.migrate"], ["flags.set", "new_checkout", "on"]]


@pytest.fixture
def held(tmp_path: Path) -> TempProject:
    """A project whose local environment's lock is held by a live process (this test)."""
    project = TempProject(tmp_path)
    project.write_env("local", "ENVIRONMENT=development\n")
    lock = project.file(".deploytools/local/deploy.lock")
    lock.mkdir(parents=True)
    holder = {
        "user": "alice",
        "machine": socket.gethostname(),
        "pid": os.getpid(),
        "since": time.time(),
        "command": "invoke deploy --env local",
        "release": None,
    }
    (lock / "holder.json").write_text(json.dumps(holder))
    return project


@pytest.mark.parametrize("argv", LOCKING, ids=lambda argv: argv[0])
def test_the_lock_conflict_fix_names_only_options_the_task_has(
    held: TempProject, argv: list[str]
) -> None:
    run = held.invoke(*argv, "--env", "local")
    assert run.returncode == (2 if argv[0].startswith("flags.") else 1), run.output
    assert "is held by alice@" in run.stderr and "Traceback" not in run.stderr
    fix = next(line for line in run.stderr.splitlines() if line.startswith("  fix: "))
    assert "invoke lock.release --force --env local" in fix, fix
    help_text = held.invoke("--help", argv[0]).stdout
    options = set(re.findall(r"--[a-z][a-z-]*", fix)) - {"--force", "--env"}  # of lock.release
    assert options and all(f"{o}=" in help_text for o in options), (fix, help_text)


def test_a_db_task_waits_for_the_lock_when_asked(held: TempProject) -> None:
    started = time.monotonic()
    run = held.invoke("db.prune", "--env", "local", "--lock-wait", "1.5")
    assert run.returncode == 1 and "is held by alice@" in run.stderr, run.output
    assert time.monotonic() - started >= 1.5
