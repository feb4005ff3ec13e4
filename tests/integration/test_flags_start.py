"""Flags a service reads only at start (``start = [...]``): a change rewrites the env file's
``FEATURE_*`` line (everything else byte for byte, mode kept, never through a symlink) and
recreates only those services; a live flag recreates nothing. The example on the process
runtime (SQLite, Celery's filesystem broker), started once for the module."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from deploytools.flags.bucketing import flag_bucket
from tests.support.deployproject import PROCESS_ENV, DeployProject, process_env
from tests.support.procs import service_port

pytestmark = pytest.mark.integration

ENV = PROCESS_ENV
# Stages after the plan's own: one whose guard holds through a short soak, one whose guard
# reads a number the test changes (the FEATURE_* value GET / shows), one whose guard cannot
# hold (a minimum error ratio).
GUARDED = """
[stages.guarded]
flags = { new_checkout = 30 }
lower = true
soak = 2
guards = [{ path = "/metrics", metric = "http_request_errors_ratio", max = 0.5 }]

[stages.busy]
flags = { new_checkout = 40 }
guards = [{ path = "/", field = "flags.llm_summaries", max = 50 }]

[stages.doomed]
flags = { new_checkout = 60 }
guards = [{ path = "/metrics", metric = "http_request_errors_ratio", min = 0.5 }]
"""
SERVICES = ("backend", "celery-worker")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployProject]:
    project = DeployProject(tmp_path_factory.mktemp("start-flags") / "app")
    plan = project.file("config/flags.toml")
    text = plan.read_text()
    assert 'owner = "ml-team"\nexpires = 2027-06-30\nlive = ["backend"]\n' in text
    text = text.replace('live = ["backend"]\n\n[stages', 'start = ["backend"]\n\n[stages')
    plan.write_text(text + GUARDED)
    project.configure({ENV: process_env()})
    project.init_env(ENV, {"PORT": str(service_port())})
    try:
        project.check("stack.up", "--env", ENV, "--wait")
        yield project
    finally:
        project.invoke("stack.down", "--env", ENV)


def pids(project: DeployProject) -> dict[str, int]:
    run = project.file(f".deploytools/{ENV}/run")
    return {name: json.loads((run / f"{name}.pid").read_text())["pid"] for name in SERVICES}


def index(project: DeployProject) -> dict[str, Any]:
    port = project.env_values(ENV)["PORT"]
    body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).json()
    return body


def test_a_start_time_flag_rewrites_its_line_and_recreates_only_its_services(
    project: DeployProject,
) -> None:
    env_file = project.file(f"config/{ENV}.env")
    before, mode, running = env_file.read_bytes(), env_file.stat().st_mode, pids(project)

    run = project.invoke("flags.set", "llm_summaries", "25", "--env", ENV, timeout=300)

    assert run.returncode == 0, run.output
    lines, old = env_file.read_bytes().splitlines(), before.splitlines()
    changed = [i for i, (a, b) in enumerate(zip(old, lines, strict=True)) if a != b]
    assert [lines[i] for i in changed] == [b"FEATURE_LLM_SUMMARIES=25"]
    assert env_file.stat().st_mode == mode
    now = pids(project)
    assert now["celery-worker"] == running["celery-worker"] and now["backend"] != running["backend"]
    assert index(project)["flags"]["llm_summaries"] == 25
    port = project.env_values(ENV)["PORT"]
    for user in ("u1", "u2", "u3", "u4"):  # the state file's 25 %, bucketed per user
        got = httpx.get(f"http://127.0.0.1:{port}/summary", params={"user": user}, timeout=5)
        expected = "llm" if flag_bucket("llm_summaries", user) < 25 else "first-lines"
        assert got.json()["summary"] == expected
    recreated = [r for r in project.journal(ENV) if r["kind"] == "flags.recreate"][-1]
    assert (recreated["result"], recreated["services"]) == ("ok", ["backend"])

    live = project.invoke("flags.set", "new_checkout", "10", "--env", ENV)
    assert live.returncode == 0, live.output
    assert pids(project) == now and env_file.read_bytes().splitlines() == lines


def test_an_env_file_that_is_a_symlink_is_never_written(project: DeployProject) -> None:
    env_file = project.file(f"config/{ENV}.env")
    real = project.file(f"config/{ENV}.real.env")
    state = project.file(f".deploytools/{ENV}/flags/flags.json")
    os.replace(env_file, real)
    env_file.symlink_to(real.name)
    try:
        before = (real.read_bytes(), state.read_bytes() if state.exists() else None)
        run = project.invoke("flags.set", "llm_summaries", "75", "--env", ENV)
        assert run.returncode == 2, run.output
        assert f"env file {env_file} is a symlink" in run.stderr and "Traceback" not in run.output
        assert (real.read_bytes(), state.read_bytes() if state.exists() else None) == before
        assert env_file.is_symlink()
    finally:
        env_file.unlink()
        os.replace(real, env_file)


def state(project: DeployProject) -> tuple[str | None, int]:
    """The stage applied and new_checkout's percentage, as the state file has them."""
    doc = json.loads(project.file(f".deploytools/{ENV}/flags/flags.json").read_text())
    flag = doc["flags"]["new_checkout"]
    percent = flag.get("targeting", {}).get("fractional", [[None, None]])[0][1]
    return doc["metadata"].get("stage"), percent if percent is not None else (
        100 if flag["defaultVariant"] == "on" else 0
    )


def test_a_stage_whose_guard_fails_sets_the_flags_back(project: DeployProject) -> None:
    held = project.invoke("flags.stage", "guarded", "--force", "--env", ENV, timeout=300)
    assert held.returncode == 0, held.output
    assert "stage guarded held for 2 s" in held.stderr
    assert state(project) == ("guarded", 30)

    doomed = project.invoke("flags.stage", "doomed", "--force", "--env", ENV, timeout=300)

    assert doomed.returncode == 1, doomed.output
    assert "guard stages.doomed.guards.0 failed" in doomed.stderr
    assert "http_request_errors_ratio is 0, below its min 0.5" in doomed.stderr, doomed.stderr
    assert state(project) == ("guarded", 30)
    kinds = [(r["kind"], r["result"]) for r in project.journal(ENV)][-4:]
    assert kinds == [
        ("flags.stage", "started"), ("flags.stage", "ok"), ("flags.guard", "failed"),
        ("flags.restore", "ok"),
    ]  # fmt: skip


def test_advance_refuses_while_the_current_stages_guard_fails(project: DeployProject) -> None:
    busy = project.invoke("flags.stage", "busy", "--force", "--env", ENV, timeout=300)
    assert busy.returncode == 0, busy.output
    env_file = project.file(f"config/{ENV}.env")
    text = env_file.read_text()
    # The app's numbers change under the stage (here: what it reads at start).
    env_file.write_text(re.sub(r"(?m)^FEATURE_LLM_SUMMARIES=.*$", "FEATURE_LLM_SUMMARIES=75", text))
    try:
        project.check("stack.up", "--env", ENV, "--service", "backend", "--wait")
        assert index(project)["flags"]["llm_summaries"] == 75
        before = project.file(f".deploytools/{ENV}/flags/flags.json").read_bytes()

        run = project.invoke("flags.advance", "--env", ENV, timeout=300)

        assert run.returncode == 1, run.output
        assert "not advancing: the guards of the current stage busy do not hold" in run.stderr
        assert "flags.llm_summaries is 75, above its max 50" in run.stderr, run.stderr
        assert project.file(f".deploytools/{ENV}/flags/flags.json").read_bytes() == before
    finally:
        env_file.write_text(text)
        project.check("stack.up", "--env", ENV, "--service", "backend", "--wait")
