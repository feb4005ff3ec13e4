"""Flags a service reads only at start (``start = [...]``): a change rewrites the env file's
``FEATURE_*`` line (everything else byte for byte, mode kept, never through a symlink) and
recreates only those services; a live flag recreates nothing. The example on the process
runtime (SQLite, Celery's filesystem broker), started once for the module."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.deployproject import PROCESS_ENV, DeployProject, process_env
from tests.support.procs import service_port

pytestmark = pytest.mark.integration

ENV = PROCESS_ENV
SERVICES = ("backend", "celery-worker")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployProject]:
    project = DeployProject(tmp_path_factory.mktemp("start-flags") / "app")
    plan = project.file("config/flags.toml")
    text = plan.read_text()
    assert 'owner = "ml-team"\nexpires = 2027-06-30\nlive = ["backend"]\n' in text
    plan.write_text(text.replace('live = ["backend"]\n\n[stages', 'start = ["backend"]\n\n[stages'))
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
