"""ProcessRuntime with a fake launcher: commands, PID files, graceful stop, then kill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deploytools.errors import OperatorError
from deploytools.hosts.local import LocalHost
from deploytools.launch import Limits
from deploytools.runtime.process import ProcessRuntime, Survey
from deploytools.templating import fill
from deploytools.testing import Clock
from tests.support.stackenv import make_settings

VALUES = {"PORT": "8123", "SECRET_KEY": "s3cr3t-value"}


class FakeLauncher:
    def __init__(self) -> None:
        self.next_pid = 1000
        self.alive: dict[int, bool] = {}
        self.spawned: list[dict[str, Any]] = []
        self.signals: list[tuple[int, bool]] = []
        self.ignores_term = False
        self.limits = Limits()
        self.missing: list[str] = []
        self.surveys = 0

    def spawn(self, argv: list[str], cwd: str, env: dict[str, str], log: str, header: str) -> int:
        self.next_pid += 1
        self.alive[self.next_pid] = True
        self.spawned.append({"argv": argv, "cwd": cwd, "env": env, "log": log, "header": header})
        return self.next_pid

    def state(self, pid: int) -> tuple[bool, int | None]:
        return self.alive.get(pid, False), None if self.alive.get(pid) else 1

    def signal(self, pid: int, *, kill: bool) -> None:
        self.signals.append((pid, kill))
        if kill or not self.ignores_term:
            self.alive[pid] = False

    def survey(self, programs: list[str]) -> Survey:
        self.surveys += 1
        return Survey(self.limits, 2048, [p for p in programs if p in self.missing])


def runtime(tmp_path: Path, launcher: FakeLauncher, clock: Clock | None = None) -> ProcessRuntime:
    settings = make_settings(
        tmp_path,
        services={
            "backend": {"command": ["{python}", "-m", "uvicorn", "--port", "{PORT}"]},
            "celery-worker": {"command": ["{python}", "-m", "celery", "-n", "w1@%h"]},
            "nginx": {"probe": {"url": "http://127.0.0.1/"}},  # no command: not ours to run
        },
        timeouts={"stop": 2.0},
    )
    clock = clock or Clock()
    return ProcessRuntime(
        settings, LocalHost(), VALUES, launcher=launcher, clock=clock, sleep=clock.sleep
    )


def test_up_fills_placeholders_and_passes_env_and_release(tmp_path: Path) -> None:
    launcher = FakeLauncher()
    rt = runtime(tmp_path, launcher)
    assert rt.services() == ["backend", "celery-worker"]
    rt.up("r1")
    backend, worker = launcher.spawned
    assert backend["argv"] == [sys.executable, "-m", "uvicorn", "--port", "8123"]
    assert worker["argv"][-2:] == ["-n", "w1@%h"]
    assert backend["cwd"].endswith("example")
    flags = f"{tmp_path}/state/t/flags/flags.json"  # deploytools.flagclient reads it
    assert backend["env"] == {
        "DEPLOYTOOLS_FLAGS_FILE": flags,
        **VALUES,
        "RELEASE_ID": "r1",
        "PYTHONUNBUFFERED": "1",
    }
    assert backend["log"] == f"{tmp_path}/state/t/run/backend.log"
    assert "backend release r1 starting" in backend["header"]
    record = json.loads(Path(f"{tmp_path}/state/t/run/backend.pid").read_text())
    assert record["pid"] == 1001 and record["release"] == "r1"
    status = rt.status()
    assert (status["backend"].state, status["backend"].release) == ("running", "r1")
    assert rt.current_release() == "r1"


def test_up_again_replaces_the_running_processes(tmp_path: Path) -> None:
    launcher = FakeLauncher()
    rt = runtime(tmp_path, launcher)
    rt.up("r1")
    rt.up("r2", ["celery-worker"])
    assert launcher.signals == [(1002, False)]
    status = rt.status()
    assert status["celery-worker"].release == "r2"
    assert status["backend"].release == "r1"


def test_a_process_that_died_is_reported_exited(tmp_path: Path) -> None:
    launcher = FakeLauncher()
    rt = runtime(tmp_path, launcher)
    rt.up("r1")
    launcher.alive[1001] = False
    backend = rt.status()["backend"]
    assert backend.crashed
    assert backend.describe() == "exited, exit code 1"


def test_stop_kills_a_process_that_ignores_terminate_after_the_timeout(tmp_path: Path) -> None:
    launcher = FakeLauncher()
    launcher.ignores_term = True
    clock = Clock()
    rt = runtime(tmp_path, launcher, clock)
    rt.up("r1")
    rt.down()
    assert launcher.signals == [(1001, False), (1002, False), (1001, True), (1002, True)]
    assert 2.0 <= clock.now < 2.5  # both told at once: one timeouts.stop (2 s) for the two
    assert {s.state for s in rt.status().values()} == {"missing"}


def test_a_bad_placeholder_stops_nothing(tmp_path: Path) -> None:
    launcher = FakeLauncher()
    rt = runtime(tmp_path, launcher)
    rt.up("r1")
    rt.commands["backend"] = ["{python}", "--port", "{NOPE}"]
    with pytest.raises(OperatorError, match="NOPE is not set"):
        rt.up("r2")
    assert launcher.signals == []


def test_unknown_service(tmp_path: Path) -> None:
    with pytest.raises(OperatorError) as failure:
        runtime(tmp_path, FakeLauncher()).logs("nginx")
    assert failure.value.fix == "use one of: backend, celery-worker"


def test_logs_are_the_tail_of_the_log_file(tmp_path: Path) -> None:
    rt = runtime(tmp_path, FakeLauncher())
    rt.up("r1")
    log = Path(f"{tmp_path}/state/t/run/backend.log")
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert rt.logs("backend", 3) == "line 97\nline 98\nline 99\n"


def test_fill() -> None:
    assert fill("a {X} {{b}}", {"X": "1"}, where="k") == "a 1 {b}"
    with pytest.raises(OperatorError, match="not a plain name"):
        fill("{X!r}", {"X": "1"}, where="k")
    with pytest.raises(OperatorError, match=r"k uses \{Y\}, but Y is not set in the env file"):
        fill("{Y}", {}, where="k")


def test_plans_show_the_commands_and_run_nothing(tmp_path: Path) -> None:
    launcher = FakeLauncher()
    rt = runtime(tmp_path, launcher)
    assert rt.plan_build("r1") == [
        f"git archive --format=tar --output=<temp>.tar HEAD in {rt.settings.app_dir} (its tracked"
        " files only; with uncommitted changes allowed, their working-tree version) -> "
        f"local:{rt.releases_dir}/r1, mode 0750 (shared with every release: var)"
    ]
    assert not Path(rt.releases_dir).exists()
    plan = rt.plan_up("r1", ["backend"])
    command = f"{sys.executable} -m uvicorn --port 8123"
    assert plan == [f"(re)start backend on release r1 in local:{rt.app_dir}: {command}"]
    assert launcher.spawned == []
    assert "s3cr3t-value" not in " ".join(rt.plan_up("r1"))


def git_project(root: Path, files: dict[str, str]) -> None:
    """A repository at ``root`` holding ``files`` in one commit."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "code"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *argv], cwd=root,
                       check=True, capture_output=True)  # fmt: skip


def root_settings(root: Path) -> Any:
    """The trial's layout: app_dir "." holds the env file, the state and the backups."""
    return make_settings(
        root, app_dir=".", env_file="config/t.env", state_dir=".deploytools",
        services={"backend": {"command": ["{python}", "-V"]}},
    )  # fmt: skip


def test_a_build_is_the_tracked_files_of_the_commit_and_links_the_shared_data(
    tmp_path: Path,
) -> None:
    launcher = FakeLauncher()
    git_project(tmp_path, {
        ".gitignore": "config/*.env\n.deploytools/\nbackups/\nvar/\n__pycache__/\n",
        "pkg/mod.py": "VERSION = 1\n", "bin/run": "#!/bin/sh\n", "var/.keep": "",
    })  # fmt: skip
    subprocess.run(["git", "add", "-f", "var/.keep"], cwd=tmp_path, check=True)
    (tmp_path / "bin/run").chmod(0o755)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "x"],
                   cwd=tmp_path, check=True)  # fmt: skip
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"x")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "t.env").write_text(f"SECRET_KEY={VALUES['SECRET_KEY']}\n")
    (tmp_path / "backups" / "t").mkdir(parents=True)
    (tmp_path / "backups" / "t" / "t-1.dump").write_text("rows")
    (tmp_path / "var" / "app.sqlite3").write_text("data")
    (tmp_path / "notes.txt").write_text("untracked")
    rt = ProcessRuntime(root_settings(tmp_path), LocalHost(), VALUES, launcher=launcher)
    umask = os.umask(0o022)
    try:
        assert not rt.has_release("r1")
        rt.build("r1")
        rt.build("r2")  # r1 is beside the code now: r2 must not hold it
    finally:
        os.umask(umask)
    code = Path(rt.releases_dir) / "r2"
    files = sorted(p.relative_to(code).as_posix() for p in code.rglob("*") if p.is_file()
                   and not p.is_relative_to(code / "var"))  # fmt: skip
    assert files == [".deploytools-release", ".gitignore", "bin/run", "pkg/mod.py"]
    modes = {p: (code / p).stat().st_mode & 0o777 for p in ["", "pkg", "bin/run", "pkg/mod.py"]}
    assert modes == {"": 0o750, "pkg": 0o750, "bin/run": 0o750, "pkg/mod.py": 0o640}
    assert Path(rt.releases_dir).stat().st_mode & 0o007 == 0
    assert (code / "var").is_symlink() and (code / "var" / "app.sqlite3").read_text() == "data"
    rt.up("r2", ["backend"])
    assert launcher.spawned[-1]["cwd"] == str(code)
    assert launcher.spawned[-1]["env"]["SECRET_KEY"] == VALUES["SECRET_KEY"]  # given, not copied
    rt.remove_release("r2")
    assert not code.exists() and (tmp_path / "var" / "app.sqlite3").read_text() == "data"


def test_a_dirty_tree_builds_its_tracked_files_and_moves_no_ref(tmp_path: Path) -> None:
    git_project(tmp_path, {"pkg/mod.py": "VERSION = 1\n", "pkg/old.py": "", "var/.keep": ""})
    (tmp_path / "pkg" / "mod.py").write_text("VERSION = 2\n")  # uncommitted
    (tmp_path / "pkg" / "old.py").unlink()  # deleted, not committed
    (tmp_path / "pkg" / "new.py").write_text("")  # untracked

    def state() -> list[str]:
        return [
            subprocess.run(
                ["git", *a], cwd=tmp_path, capture_output=True, text=True, check=True
            ).stdout
            for a in (["status", "--porcelain", "-uno"], ["for-each-ref"], ["ls-files", "-s"])
        ]

    before = state()
    rt = ProcessRuntime(root_settings(tmp_path), LocalHost(), VALUES, launcher=FakeLauncher())
    rt.build("r1")
    code = Path(rt.releases_dir) / "r1"
    assert (code / "pkg" / "mod.py").read_text() == "VERSION = 2\n"
    assert not (code / "pkg" / "old.py").exists() and not (code / "pkg" / "new.py").exists()
    assert state() == before and not (tmp_path / ".git" / "refs" / "stash").exists()


def test_a_build_from_another_checkout_takes_its_code_and_keeps_our_data(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "var").mkdir(parents=True)
    worktree = tmp_path / "worktree"
    git_project(worktree, {"app/pkg/mod.py": "VERSION = 0\n"})
    settings = make_settings(
        tmp_path, app_dir="app", services={"backend": {"command": ["{python}", "-V"]}}
    )
    rt = ProcessRuntime(settings, LocalHost(), VALUES, launcher=FakeLauncher())
    rt.build("r0", source=worktree)
    code = Path(rt.releases_dir) / "r0"
    assert (code / "pkg" / "mod.py").read_text() == "VERSION = 0\n"
    assert (code / "var").resolve() == (app / "var").resolve()


def test_a_tracked_symlink_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    git_project(tmp_path, {"pkg/mod.py": ""})
    (tmp_path / "pkg" / "link.py").symlink_to("mod.py")
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"],
                   cwd=tmp_path, check=True)  # fmt: skip
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "l"],
                   cwd=tmp_path, check=True)  # fmt: skip
    rt = ProcessRuntime(root_settings(tmp_path), LocalHost(), VALUES, launcher=FakeLauncher())
    with pytest.raises(OperatorError, match=r"pkg/link\.py is a symbolic link"):
        rt.build("r1")
    assert not Path(rt.releases_dir).exists()


def test_a_launch_the_host_cannot_exec_stops_nothing(tmp_path: Path) -> None:
    """A 200 kB env value passed to a release would fail with E2BIG after the old one was
    stopped, and the old one could not start again either: refuse before stopping anything."""
    launcher = FakeLauncher()
    rt = runtime(tmp_path, launcher)
    rt.up("r1")
    rt.env_values["BIG"] = "x" * 200_000
    with pytest.raises(OperatorError) as caught:
        rt.up("r2")
    assert "BIG is 200005 bytes" in caught.value.problem
    assert "x" * 100 not in str(caught.value)  # the value is never shown
    assert launcher.signals == [] and len(launcher.spawned) == 2  # r1 untouched


def test_a_launch_over_the_hosts_total_limit_or_with_a_missing_program_stops_nothing(
    tmp_path: Path,
) -> None:
    launcher = FakeLauncher()
    runtime(tmp_path, launcher).up("r1")
    launcher.limits = Limits(arg_max=2200, per_string=None)  # macOS-like: only a total
    with pytest.raises(OperatorError, match="ARG_MAX"):
        runtime(tmp_path, launcher).up("r2")
    launcher.limits, launcher.missing = Limits(), [sys.executable]
    with pytest.raises(OperatorError, match="not found"):
        runtime(tmp_path, launcher).up("r2")
    assert launcher.signals == [] and len(launcher.spawned) == 2


def test_the_host_is_surveyed_once_per_run(tmp_path: Path) -> None:
    launcher = FakeLauncher()
    rt = runtime(tmp_path, launcher)
    rt.check()
    rt.up("r1")
    rt.up("r2")
    assert launcher.surveys == 1
