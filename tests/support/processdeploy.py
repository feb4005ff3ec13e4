"""The example deployed on the process runtime, as a site a test can break and get back.

``ProcessSite`` wraps a ``DeployProject`` whose ``local`` environment runs the example as
supervised processes (SQLite, Celery's filesystem broker): a deploy takes seconds, so the
failure and signal scenarios live here. Every test starts from ``running()`` ("a healthy
release serves"), which deploys one when a failed test left none, and ``recover()`` (run after
each test) removes what a killed run may have left: its lock.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

from tests.support.deployproject import PROCESS_ENV, DeployProject, health

ENV = PROCESS_ENV
WEB = "example/exampleapp/web.py"
NEW_REVISION = "example/migrations/versions/0004_test.py"
HEALTH_ANCHOR = "    budget = settings.health_timeout + 1.0\n"


class ProcessSite:
    def __init__(self, project: DeployProject) -> None:
        self.project = project

    @property
    def port(self) -> str:
        return self.project.env_values(ENV)["PORT"]

    def healthy_body(self, tag: str) -> dict[str, Any]:
        return {"status": "healthy", "release": tag, "database": "ok", "redis": "disabled"}

    def serves(self, tag: str) -> bool:
        return health(self.port) == (200, self.healthy_body(tag))

    def good(self) -> list[dict[str, Any]]:
        return [r for r in self.project.releases(ENV) if r["result"] == "ok"]

    def running(self) -> str:
        """The tag of the healthy release now serving; deploys one when none serves."""
        good = self.good()
        if not good or not self.serves(str(good[-1]["tag"])):
            run = self.project.deploy(ENV)
            assert run.returncode == 0, run.output
            good = self.good()
        tag = str(good[-1]["tag"])
        assert self.serves(tag), health(self.port)
        return tag

    def broken_health(self) -> str:
        """web.py whose /health always answers 503: a release that never becomes healthy."""
        text = self.project.file(WEB).read_text()
        assert text.count(HEALTH_ANCHOR) == 1
        broken = '    return JSONResponse({"status": "broken"}, status_code=503)  # test\n'
        return text.replace(HEALTH_ANCHOR, broken + HEALTH_ANCHOR)

    def take_back(self, sha: str) -> None:
        """Revert a test's commit (a new commit, as an operator would)."""
        self.project.git("revert", "--no-edit", sha)

    def pid(self, service: str = "backend") -> int:
        record = json.loads((self.project.state_dir(ENV) / f"run/{service}.pid").read_text())
        return int(record["pid"])

    def journal_since(self, count: int) -> list[dict[str, Any]]:
        return self.project.journal(ENV)[count:]

    def no_leftovers(self) -> None:
        """No lock, no temporary or partial file, every journal line whole."""
        assert not (self.project.state_dir(ENV) / "deploy.lock").exists()
        for where in (self.project.state_dir(ENV), self.project.file("backups")):
            if where.exists():
                partial = [p for p in where.rglob("*") if p.name.endswith((".tmp", ".partial"))]
                assert partial == []
        text = (self.project.state_dir(ENV) / "journal.jsonl").read_text()
        assert text.endswith("\n")
        self.project.journal(ENV)  # every line parses

    def recover(self) -> None:
        """After a test: a run it killed may have left its lock (its pid is gone)."""
        self.project.recover(ENV)

def position(steps: list[str], step: str) -> int:
    """Where a step stands in ``steps``; the two checks that run together stand together."""
    return steps.index("wait healthy" if step == "verify celery" else step)


def wait_for(
    what: str, ready: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 60.0
) -> None:
    """Poll ``ready`` while ``proc`` (a background CLI run) lives; bounded."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the run ended before {what}:\n{out}{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.02)
