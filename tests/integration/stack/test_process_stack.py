"""The process runtime: the example app as supervised local processes, no Docker.

``local`` mode (SQLite, Celery's filesystem broker) needs no server at all; the same checks
run against the session's Postgres and Redis where a test needs a server to go away.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploytools.config import EnvironmentSettings
from deploytools.errors import DeployFailure
from deploytools.hosts.local import LocalHost
from deploytools.platform import pid_alive
from deploytools.probes.celery import CeleryCheckFailed, verify_celery
from deploytools.probes.health import wait_healthy
from deploytools.runtime.process import PosixLauncher, ProcessRuntime
from tests.integration.stack.conftest import CapturedUi
from tests.support.procs import free_port
from tests.support.stackenv import make_settings

pytestmark = pytest.mark.integration

WORKER = f"worker1@{socket.gethostname()}"
COMMANDS = {
    "backend": ["{python}", "-m", "uvicorn", "exampleapp.web:app", "--host", "127.0.0.1",
                "--port", "{PORT}"],
    "celery-worker": ["{python}", "-m", "celery", "-A", "exampleapp.worker", "worker",
                      "--loglevel", "INFO", "--concurrency", "1", "-n", "worker1@%h",
                      "--without-gossip", "--without-mingle"],
}  # fmt: skip


def process_settings(root: Path) -> EnvironmentSettings:
    return make_settings(
        root,
        services={
            "backend": {
                "command": COMMANDS["backend"],
                "probe": {
                    "url": "http://127.0.0.1:{PORT}/health",
                    "json_fields": {"status": "healthy"},
                    "timeout": 60,
                },
            },
            "celery-worker": {"command": COMMANDS["celery-worker"]},
        },
        celery={"ping_timeout": 10, "canary_timeout": 15},  # a worker may still be booting
        timeouts={"stop": 10},
    )


@dataclass
class Stack:
    settings: EnvironmentSettings
    runtime: ProcessRuntime
    values: dict[str, str]

    def wait(self, ui: CapturedUi, **kwargs: Any) -> Any:
        return wait_healthy(
            self.settings, self.runtime, ui.ui, host=LocalHost(), env_values=self.values, **kwargs
        )

    def verify(self, ui: CapturedUi, release: str) -> Any:
        return verify_celery(self.settings, self.values, release, ui.ui, host=LocalHost())


def running_stack(root: Path, values: dict[str, str]) -> Iterator[Stack]:
    settings = process_settings(root)
    runtime = ProcessRuntime(settings, LocalHost(), values)
    try:
        runtime.up("r1")
        yield Stack(settings, runtime, values)
    finally:
        runtime.down()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Local mode: SQLite and the filesystem broker; no server, no Docker."""
    root = tmp_path_factory.mktemp("process-local")
    values = {
        "PORT": str(free_port()),
        "DATABASE_URL": f"sqlite:///{root}/app.sqlite3",
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_FS_ROOT": str(root / "celery"),
    }
    yield from running_stack(root, values)


@pytest.fixture(scope="module")
def served(
    postgres_server: Any, redis_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The same processes on the session's Postgres and Redis."""
    root = tmp_path_factory.mktemp("process-served")
    values = {
        "PORT": str(free_port()),
        "DATABASE_URL": postgres_server.create_database("stack_process"),
        "REDIS_URL": redis_server.url(6),
        "CELERY_BROKER_URL": redis_server.url(6),
    }
    yield from running_stack(root, values)


def test_local_mode_comes_up_healthy_and_celery_verifies(
    local: Stack, captured: CapturedUi
) -> None:
    healthy = local.wait(captured)
    assert {h.service for h in healthy} == {"backend", "celery-worker"}
    assert {h.release for h in healthy} == {"r1"}
    report = local.verify(captured, "r1")
    assert report.releases == {WORKER: "r1"}
    assert local.runtime.current_release() == "r1"


def test_down_stops_every_process(tmp_path: Path, captured: CapturedUi) -> None:
    values = {"PORT": str(free_port()), "DATABASE_URL": f"sqlite:///{tmp_path}/a.sqlite3",
              "CELERY_FS_ROOT": str(tmp_path / "celery")}  # fmt: skip
    runtime = ProcessRuntime(process_settings(tmp_path), LocalHost(), values)
    runtime.up("r1")
    pids = [int(s.detail.split()[1]) for s in runtime.status().values()]
    assert all(pid_alive(p) for p in pids)
    runtime.down()
    assert not any(pid_alive(p) for p in pids)
    assert {s.state for s in runtime.status().values()} == {"missing"}


def test_stopped_worker_is_no_worker_answering(local: Stack, captured: CapturedUi) -> None:
    local.runtime.stop(["celery-worker"])
    assert local.settings.celery is not None
    quick = local.settings.celery.model_copy(update={"ping_timeout": 2.0})
    try:
        with pytest.raises(CeleryCheckFailed) as failure:
            verify_celery(
                local.settings.model_copy(update={"celery": quick}),
                local.values,
                "r1",
                captured.ui,
                host=LocalHost(),
            )
        assert failure.value.kind == "no-worker"
        with pytest.raises(DeployFailure, match="celery-worker is not running"):
            local.wait(captured)
    finally:
        local.runtime.up("r1", ["celery-worker"])


def test_worker_on_another_release_is_reported(local: Stack, captured: CapturedUi) -> None:
    local.runtime.up("r2", ["celery-worker"])
    try:
        with pytest.raises(CeleryCheckFailed) as failure:
            local.verify(captured, "r1")
        assert failure.value.kind == "wrong-release"
        assert f"{WORKER} runs 'r2'" in failure.value.problem
    finally:
        local.runtime.up("r1", ["celery-worker"])


def test_backend_that_crashes_on_start_fails_the_wait_at_once(
    tmp_path: Path, captured: CapturedUi
) -> None:
    values = {"PORT": str(free_port()), "CELERY_FS_ROOT": str(tmp_path)}  # no DATABASE_URL
    settings = process_settings(tmp_path)
    runtime = ProcessRuntime(settings, LocalHost(), values)
    try:
        runtime.up("r1", ["backend"])
        with pytest.raises(DeployFailure) as failure:
            wait_healthy(
                settings, runtime, captured.ui, host=LocalHost(), env_values=values,
                services=["backend"],
            )  # fmt: skip
    finally:
        runtime.down()
    text = failure.value.problem
    assert text.startswith("backend stopped (exited, exit code 3)")  # not after 60 s
    assert "DATABASE_URL is not set" in text


def test_backend_unhealthy_when_its_database_goes_away(
    served: Stack, postgres_server: Any, captured: CapturedUi
) -> None:
    served.verify(captured, "r1")  # right after the start: waits for the booting worker
    served.wait(captured)
    postgres_server.stop()
    try:
        with pytest.raises(DeployFailure) as failure:
            served.wait(captured, services=["backend"], timeout=3)
    finally:
        postgres_server.start()
    text = failure.value.problem
    assert text.startswith("backend not healthy after 3s")
    assert '"status":"unhealthy"' in text
    assert "unhealthy: database=OperationalError" in text  # from the backend's log
    assert postgres_server.password not in text
    served.wait(captured, services=["backend"])


def test_log_and_pid_files_are_private(tmp_path: Path) -> None:
    """Logs hold what services print, PID files their argv (env values through {NAME}): 0600,
    and a log left readable by others is tightened on the next start."""
    sleeper = ["{python}", "-c", "import sys, time; print(sys.argv[1]); time.sleep(60)", "{TOKEN}"]
    settings = make_settings(
        tmp_path,
        services={"old": {"command": sleeper}, "new": {"command": sleeper}},
        timeouts={"stop": 5},
    )
    runtime = ProcessRuntime(settings, LocalHost(), {"TOKEN": "tok-5b4a3c2d1e0f"})
    run_dir = Path(runtime.run_dir)
    run_dir.mkdir(parents=True)
    wide = run_dir / "old.log"
    wide.write_text("an older run's output\n")
    wide.chmod(0o644)
    umask = os.umask(0o022)  # a common default: new files readable by everyone
    try:
        runtime.up("r1")
        names = ["old.log", "new.log", "old.pid", "new.pid"]
        modes = {name: (run_dir / name).stat().st_mode & 0o777 for name in names}
    finally:
        os.umask(umask)
        runtime.down()
    assert modes == dict.fromkeys(names, 0o600)
    assert wide.read_text().startswith("an older run's output\n--- deploytools: old release r1")


def test_one_shot_processes_are_judged_by_their_recorded_exit_code(
    tmp_path: Path, captured: CapturedUi
) -> None:
    """Started as over SSH (``PosixLauncher``: this machine's python3 and kill), so the launcher
    cannot know how a process ended: the one-shot's wrapper records it."""
    runs = "import time; print('migrating'); time.sleep(1.5); print('migrated')"
    fails = "import sys; print('collect: no such directory'); sys.exit(3)"
    settings = make_settings(
        tmp_path,
        services={
            "migrate": {"command": ["{python}", "-c", runs], "oneshot": True},
            "collect": {"command": ["{python}", "-c", fails], "oneshot": True},
        },
        timeouts={"stop": 5},
    )
    host = LocalHost()
    runtime = ProcessRuntime(settings, host, {}, launcher=PosixLauncher(host, query=30))
    assert runtime.one_shots() == {"migrate", "collect"}
    try:
        runtime.up("r1")
        done = wait_healthy(settings, runtime, captured.ui, host=host, env_values={},
                            services=["migrate"])  # fmt: skip
        with pytest.raises(DeployFailure) as failure:
            wait_healthy(settings, runtime, captured.ui, host=host, env_values={},
                         services=["collect"])  # fmt: skip
        status = runtime.status()
    finally:
        runtime.down()
    assert [(h.service, h.probe) for h in done] == [("migrate", "completed (exit code 0)")]
    assert done[0].seconds >= 1.0  # seen running first
    assert failure.value.problem.startswith("one-shot collect failed (exit code 3)\n")
    assert "collect: no such directory" in failure.value.problem
    assert (status["migrate"].exit_code, status["collect"].exit_code) == (0, 3)
    assert not list(Path(runtime.run_dir).glob("*.exit"))  # down forgets them with the pids
