"""A deploy over several hosts (process runtime): each host its own sshd, key and root.

Three simulated hosts, the primary first (``tests.support.hostsite``: the trial-shaped ``shop``,
migrated once, on the primary; a release made to fail on one host by its own code).

One project serves the module; every test first brings the three hosts to a healthy release
of its own (``baseline``), so none depends on another having run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.hostsite import TOKEN, HostSite, site_fixture
from tests.support.postgres_server import alembic_revision
from tests.support.procs import free_port
from tests.support.rootproject import ENV, REVISION
from tests.support.sshd import SshTarget

pytestmark = pytest.mark.integration

HOSTS = ("roll-1", "roll-2", "roll-3")
A2 = REVISION.replace('"a1"', '"a2"').replace("down_revision = None", 'down_revision = "a1"')
A2 = A2.replace('"items"', '"orders"')

site = site_fixture(HOSTS)


def test_a_three_host_deploy_ends_healthy_on_every_host(site: HostSite) -> None:
    site.baseline()
    site.commit("next")

    run = site.deploy()

    assert run.returncode == 0, run.output
    tag = site.last_tag()
    assert site.serving() == dict.fromkeys(HOSTS, tag)
    assert site.started() == list(HOSTS)  # one batch each, the primary first
    assert "roll out: per host" in run.output
    assert TOKEN not in run.output
    built = [e for e in site.journal() if e["kind"] == "host.step.done" and e["step"] == "build"]
    assert {e["host"] for e in built[-3:]} == set(HOSTS)
    assert all(e["images"]["shipped"].endswith("bytes shipped") for e in built[-3:]), built[-3:]
    for target in site.targets:  # the release as an archive of tracked files: no env file
        releases = Path(target.root) / f".deploytools/{ENV}/releases/{tag}"
        assert (releases / "shop/__main__.py").is_file()
        assert not [p for p in releases.rglob("*.env") if p.is_file()]


def test_an_unreachable_host_stops_the_deploy_before_anything_changes(site: HostSite) -> None:
    before = site.baseline()
    closed = SshTarget(**{**vars(site.targets[0]), "name": "roll-4", "port": free_port()})
    site.configure(extra=closed)
    site.commit("with a host that does not answer")

    run = site.deploy()

    assert run.returncode == 1 and "Traceback" not in run.output, run.output
    assert "deploy failed at step 'check hosts'" in run.stderr
    assert "roll-4" in run.stderr
    assert site.serving() == dict.fromkeys(HOSTS, before)
    last = [e for e in site.journal() if e["kind"] == "step.start"][-1]
    assert last["step"] == "check hosts"  # no lock, build, backup or migration


def test_one_failure_over_the_budget_stops_the_rollout_and_takes_every_host_back(
    site: HostSite,
) -> None:
    before = site.baseline()
    site.configure(max_fail=0)
    site.project.file("alembic/versions/a2_orders.py").write_text(A2)
    site.commit("a migration, and roll-2 fails", fail_on="roll-2")
    try:
        run = site.deploy()
    finally:
        site.project.file("alembic/versions/a2_orders.py").unlink()

    assert run.returncode == 1 and "Traceback" not in run.output, run.output
    assert "roll out failed" in run.stderr and "more than max_fail = 0" in run.stderr
    assert "not started: roll-3" in run.stderr
    assert site.serving() == dict.fromkeys(HOSTS, before)  # roll-1 and roll-2 taken back
    assert alembic_revision(site.url.replace("+psycopg", "")) == "a1"  # the migration undone
    assert site.started() == ["roll-1", "roll-2"]  # the batch of roll-3 never began


def test_one_failure_within_the_budget_lets_the_rollout_go_on(site: HostSite) -> None:
    before = site.baseline()
    site.configure(max_fail=1)
    site.commit("roll-2 fails, one failure allowed", fail_on="roll-2")

    run = site.deploy()

    tag = site.last_tag()
    assert run.returncode == 0, run.output
    assert tag != before
    assert "failed within max_fail = 1: roll-2" in run.stderr
    serving = site.serving()
    assert serving["roll-1"] == tag and serving["roll-3"] == tag
    assert serving["roll-2"] != tag


def answers(site: HostSite) -> dict[str, tuple[object, object]]:
    """host -> (its service's pid, whether user-1 gets the new checkout there)."""
    return {name: (body.get("pid"), body.get("checkout")) for name, body in site.bodies().items()}


def checkout_everywhere(site: HostSite, expected: bool) -> dict[str, tuple[object, object]]:
    """Every host's answer once each says ``expected`` (the app checks its file every 0.2 s)."""
    seen = answers(site)
    deadline = time.monotonic() + 5
    while any(c is not expected for _, c in seen.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = answers(site)
    return seen


def test_flags_reach_every_host_and_their_running_services(site: HostSite) -> None:
    site.baseline()
    assert site.invoke("flags.stage", "dark").returncode == 0
    before = checkout_everywhere(site, False)

    on = site.invoke("flags.set", "new_checkout", "on")

    assert on.returncode == 0, on.output
    now = checkout_everywhere(site, True)
    assert now == {name: (pid, True) for name, (pid, _) in before.items()}  # no restart
    copies = {(site.state(n) / "flags/flags.json").read_bytes() for n in HOSTS}
    assert len(copies) == 1
    kill = site.invoke("flags.kill", "new_checkout")
    assert kill.returncode == 0, kill.output
    assert checkout_everywhere(site, False) == before

    (site.state(HOSTS[2]) / "flags/flags.json").write_bytes(copies.pop())  # a host left behind
    listed = site.invoke("flags.list")
    assert f"{HOSTS[2]} differs from the primary: new_checkout on (primary: off)" in listed.stderr
    site.commit("after the kill")
    run = site.deploy()

    assert run.returncode == 0, run.output
    assert {c for _, c in checkout_everywhere(site, False).values()} == {False}
    record = [r for r in site.journal() if r["kind"] == "release"][-1]
    assert (record["flags"], record["flags_stage"]) == ({"new_checkout": 0}, "dark")
    assert "differs" not in site.invoke("flags.list").stderr


def test_releases_say_which_hosts_run_each_release(site: HostSite) -> None:
    tag = site.baseline()
    listed = site.invoke("releases", "--json")
    assert listed.returncode == 0, listed.output
    newest = json.loads(listed.stdout)[0]
    assert (newest["tag"], newest["running_on"]) == (tag, list(HOSTS))
    table = site.invoke("releases")
    assert "runs on" in table.stdout
    assert row_of(table.stdout, tag)[:2] == ["*", tag] and HOSTS[2] in row_of(table.stdout, tag)[2]

    down = site.invoke("stack.down", "--hosts", HOSTS[2])
    assert down.returncode == 0, down.output
    after = site.invoke("releases", "--json")
    assert json.loads(after.stdout)[0]["running_on"] == list(HOSTS[:2])
    table = site.invoke("releases")
    assert table.returncode == 0, table.output
    assert f"no release on every service on {HOSTS[2]}: not marked" in table.stderr
    assert row_of(table.stdout, tag)[:3] == ["", tag, f"{HOSTS[0]}, {HOSTS[1]}"]


def row_of(table: str, tag: str) -> list[str]:
    """The cells of the table row that holds ``tag``."""
    line = next(line for line in table.splitlines() if tag in line)
    return [cell.strip() for cell in line.split("│")[1:-1]]
