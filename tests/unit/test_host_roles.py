"""Which services a host runs: those whose roles it has; a service without roles everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

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
