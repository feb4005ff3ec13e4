"""Hosts keep their own journals, `history` merges them, and stack.* acts host by host.

Two simulated hosts (``tests.support.hostsite``), the primary first. One project serves the
module; every test first brings both hosts to a healthy release of its own (``baseline``).
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.support.hostsite import WEB, HostSite, site_fixture
from tests.support.procs import free_port
from tests.support.sshd import SshTarget

pytestmark = pytest.mark.integration

HOSTS = ("jr-1", "jr-2")
OWN = "host-journal.jsonl"

site = site_fixture(HOSTS)


def test_each_host_journals_its_own_steps_and_history_merges_them(site: HostSite) -> None:
    tag = site.baseline()

    for name in HOSTS:
        own = site.journal(name, OWN)
        assert {r["host"] for r in own} == {name}, own
        done = {r["step"] for r in own if r["kind"] == "host.step.done"}
        assert "check host" in done, own  # before the release has its tag
        done = {r["step"] for r in own if r["kind"] == "host.step.done" and r["release"] == tag}
        assert done == {"build", "start", "wait healthy", "retire"}, own
        assert all(isinstance(r["duration"], float) for r in own if r["kind"] == "host.step.done")
    run = site.invoke("history", "--json", "--limit", "100000")
    assert run.returncode == 0, run.output
    history = json.loads(run.stdout)
    assert [r["at"] for r in history] == sorted(r["at"] for r in history)
    for name in HOSTS:  # every line of a host's journal, once, said to be in both journals
        mine = [{k: v for k, v in r.items() if k != "journals"} for r in history
                if name in r["journals"]]  # fmt: skip
        assert mine == site.journal(name, OWN)
        assert all(r["journals"] == ["site", name] for r in history if name in r["journals"])
    assert [r for r in history if r["kind"] == "release"][-1]["journals"] == ["site"]


def test_history_warns_of_a_host_it_cannot_reach_and_shows_the_site_journal(
    site: HostSite,
) -> None:
    tag = site.baseline()
    gone = SshTarget(**{**vars(site.targets[0]), "name": "jr-3", "port": free_port()})
    site.configure(extra=gone)
    try:
        table = site.invoke("history", "--limit", "100000")
        run = site.invoke("history", "--json", "--limit", "100000")
    finally:
        site.configure()

    for said in (table, run):
        assert said.returncode == 0 and "Traceback" not in said.output, said.output
        assert "jr-3: its own journal could not be read" in said.stderr
    assert tag in table.stdout and "jr-2" in table.stdout
    history = json.loads(run.stdout)
    assert [r["tag"] for r in history if r["kind"] == "release"][-1] == tag
    assert not [r for r in history if "jr-3" in r["journals"]]


def test_stack_status_of_the_hosts_named(site: HostSite) -> None:
    tag = site.baseline()

    run = site.invoke("stack.status", "--hosts", "jr-2", "--json")

    assert run.returncode == 0, run.output
    rows = json.loads(run.stdout)
    assert [(r["host"], r["service"], r["release"]) for r in rows] == [("jr-2", "web", tag)]


def test_a_worker_only_host_shows_and_runs_its_own_services(site: HostSite) -> None:
    before = site.baseline()
    worker = {"command": [sys.executable, "-c", "import time; time.sleep(3600)"]}
    services = {"web": {**WEB, "roles": ["web"]}, "worker": {**worker, "roles": ["worker"]}}
    site.configure(roles={"jr-2": ["worker"]}, services=services)
    site.commit("a worker on jr-2")
    try:
        deployed = site.deploy()
        status = site.invoke("stack.status", "--json")
        table = site.invoke("stack.status")
        logs = site.invoke("stack.logs", "--service", "web", "--lines", "5")
        moved_roles = {"jr-1": ["web", "worker"], "jr-2": ["web"]}  # the config moves on
        site.configure(roles=moved_roles, services=services)
        moved = site.invoke("stack.status", "--json")
    finally:
        site.configure(roles={"jr-2": ["worker"]}, services=services)
        site.invoke("stack.down")

    assert deployed.returncode == 0, deployed.output
    assert status.returncode == 0, status.output
    tag = site.last_tag()
    rows = {(r["host"], r["service"], r["state"], r["release"]) for r in json.loads(status.stdout)}
    running = {row for row in rows if row[2] == "running"}
    # jr-2's web (of `before`) has no role there now: retired once jr-1's web was healthy.
    assert running == {("jr-1", "web", "running", tag), ("jr-2", "worker", "running", tag)}
    assert not [row for row in rows if row[3] == before and row[2] == "running"], rows
    retired = [e for e in site.since_last_deploy() if e["kind"] == "host.step.done"
               and e["step"] == "retire"]  # fmt: skip
    assert {e["host"]: e["stopped"] for e in retired} == {"jr-1": [], "jr-2": ["web"]}
    assert moved.returncode == 0, moved.output
    left = [r for r in json.loads(moved.stdout) if r["host"] == "jr-2" and r["state"] == "running"]
    assert [(r["service"], r["detail"].endswith("(not of its roles)")) for r in left] == [
        ("worker", True)
    ], left
    rows_shown = [line.split("│") for line in table.stdout.splitlines() if tag in line]
    shown = sorted([c.strip() for c in row[1:3]] for row in rows_shown)
    assert shown == [["jr-1", "web"], ["jr-2", "worker"]], table.stdout
    assert logs.returncode == 0, logs.output
    assert "--- jr-1: web" in logs.stderr and "jr-2: web" not in logs.output
