"""Run the gate's checks: each (check, environment) pair is a job, and the jobs run at once in
a thread pool. They only read files and wait on child processes (docker compose, alembic), so
threads overlap their waiting; a job never depends on another's result."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from deploytools.errors import DeployToolsError
from deploytools.gate.project import Project
from deploytools.gate.registry import Check, Item, Result

WORKERS = 8  # most jobs wait on a subprocess or the disk, not on the 2 cores


def run_checks(project: Project, checks: Sequence[Check]) -> list[Result]:
    """Every check on every environment it concerns, in registry then environment order."""
    jobs = [(check, env) for check in checks for env in _targets(project, check)]
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(jobs))) as pool:
        done = list(pool.map(lambda job: _timed(project, *job), jobs))
    return [result for results in done for result in results]


def _targets(project: Project, check: Check) -> list[str | None]:
    if not check.per_environment:
        return [None]
    if check.applies is None:
        return list(project.environments)
    # An environment whose config does not load gets a row saying so (the config check fails).
    return [
        env for env in project.environments
        if _broken(project, env) or check.applies(project.settings(env))
    ]  # fmt: skip


def _broken(project: Project, env: str) -> bool:
    try:
        project.settings(env)
    except DeployToolsError:
        return True
    return False


def _timed(project: Project, check: Check, env: str | None) -> list[Result]:
    start = time.perf_counter()
    items = _items(project, check, env)
    seconds = time.perf_counter() - start
    targets = list(dict.fromkeys(item.target for item in items))
    return [
        Result(check.name, target, tuple(i for i in items if i.target == target), seconds)
        for target in targets
    ]


def _items(project: Project, check: Check, env: str | None) -> list[Item]:
    """What the check says; a check that raises an operator error fails with its words."""
    target = env or "project"
    if env is not None and check.name != "config" and _broken(project, env):
        return [
            Item(env, "could-not-run", "the environment's config does not load (see check "
                 "config): not checked", project.shown(project.config))
        ]  # fmt: skip
    try:
        items = check.run(project, env)
    except DeployToolsError as exc:
        fix = f" (fix: {exc.fix})" if exc.fix else ""
        return [Item(target, "fail", exc.problem + fix)]
    return items or [Item(target, "could-not-run", "the check found nothing to check")]
