"""Which services a host runs: those whose roles it has; a service without roles everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploytools.runtime.base import ServiceStatus
from deploytools.steps.hosts import Retire
from deploytools.testing import MemoryHost, run_context, settings_for

HOSTS = [
    {"name": "web-1", "address": "10.0.0.1", "primary": True},
    {"name": "work-1", "address": "10.0.0.2", "roles": ["worker"]},
    {"name": "both-1", "address": "10.0.0.3", "roles": ["web", "worker"]},
]
SERVICES = {
    "web": {"command": ["{python}", "-m", "shop"], "roles": ["web"]},
    "worker": {"command": ["{python}", "-m", "celery"], "roles": ["worker"]},
    "beat": {"command": ["{python}", "-m", "celery", "beat"], "roles": ["worker"]},
}


@pytest.mark.parametrize(
    ("host", "runs"),
    [("web-1", ["web"]), ("work-1", ["worker", "beat"]), ("both-1", None)],
)
def test_a_host_runs_the_services_of_its_roles(
    tmp_path: Path, host: str, runs: list[str] | None
) -> None:
    settings = settings_for(tmp_path, hosts=HOSTS, services=SERVICES)
    ctx = run_context(settings, MemoryHost(host))

    assert ctx.services == runs  # None: every service


def test_a_service_without_roles_runs_on_every_host(tmp_path: Path) -> None:
    services = {**SERVICES, "cron": {"command": ["{python}", "-m", "cron"]}}
    settings = settings_for(tmp_path, hosts=HOSTS, services=services)

    assert run_context(settings, MemoryHost("work-1")).services == ["worker", "beat", "cron"]


def test_this_machine_runs_every_service(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, services=SERVICES)

    assert run_context(settings, MemoryHost("local", local=True)).services is None


class Running:
    """A runtime that runs ``services`` (name -> release) and records what it is told."""

    def __init__(self, services: dict[str, str]) -> None:
        self.running = dict(services)
        self.calls: list[tuple[str, str, list[str]]] = []

    def services(self) -> list[str]:
        return list(SERVICES)

    def status(self) -> dict[str, ServiceStatus]:
        return {n: ServiceStatus(n, "running", release=r) for n, r in self.running.items()}

    def stop(self, services: list[str]) -> None:
        self.calls.append(("stop", "", list(services)))

    def up(self, release: str, services: list[str]) -> None:
        self.calls.append(("up", release, list(services)))


def test_a_service_the_hosts_roles_no_longer_give_it_is_retired_and_the_undo_restarts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(tmp_path, hosts=HOSTS, services=SERVICES)
    runtime = Running({"web": "r1", "worker": "r0", "beat": "r0"})  # worker moved to work-1
    ctx = run_context(settings, MemoryHost("web-1"), release="r1", _runtime=runtime)
    monkeypatch.setattr(ctx, "for_release", lambda tag: ctx)  # r0's config: the same here

    done = Retire().run(ctx)
    undone = Retire().undo(ctx)

    assert done == {"stopped": ["beat", "worker"]}
    assert runtime.calls == [("stop", "", ["beat", "worker"]), ("up", "r0", ["beat", "worker"])]
    assert undone == "started again: beat, worker"


def test_a_host_that_runs_only_its_own_services_retires_nothing(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, hosts=HOSTS, services=SERVICES)
    runtime = Running({"worker": "r1", "beat": "r1"})
    ctx = run_context(settings, MemoryHost("work-1"), release="r1", _runtime=runtime)

    assert Retire().run(ctx) == {"stopped": []} and runtime.calls == []
    assert Retire().undo(ctx) == "nothing was stopped"
