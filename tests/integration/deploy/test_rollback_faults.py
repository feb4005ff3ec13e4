"""``invoke rollback`` under signals, on the process runtime: the release and the database it
left stay as they were, whatever step the signal lands in.

The module's project runs two releases: ``old`` (revision 0003) and ``new`` (0004, a column
more); each test rolls back from ``new`` to ``old`` and signals the rollback at one step.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.support.deployproject import DeployProject, migration, process_env, stop_process
from tests.support.processdeploy import ENV, NEW_REVISION, ProcessSite, position, wait_for
from tests.support.procs import free_port

pytestmark = pytest.mark.integration

STEPS = ["validate env", "lock", "prepare release", "backup", "database", "start", "wait healthy"]


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProcessSite, str, str]]:
    project = DeployProject(tmp_path_factory.mktemp("rollback-faults") / "app")
    project.configure({ENV: process_env(probe_timeout=8)})
    project.init_env(ENV, {"PORT": str(free_port())})
    site = ProcessSite(project)
    try:
        old = site.running()
        column = migration(
            "0004",
            'op.add_column("users", sa.Column("nick", sa.Text))',
            'op.drop_column("users", "nick")',
        )
        project.commit("new: a nick column", {NEW_REVISION: column})
        new = project.deploy(ENV)
        assert new.returncode == 0, new.output
        yield site, old, site.running()
    finally:
        project.invoke("stack.down", "--env", ENV)


def back_to(site: ProcessSite, new: str) -> None:
    """``new`` serving on revision 0004 as the journal's last good release. A case before this
    one may have left the rollback done (its signal lost: the journal then says ``old`` runs,
    and every later case failed) or half a state: rolled forward as an operator would, then
    repaired with the stack and db tasks if need be."""
    if site.good()[-1]["tag"] != new:
        forward = site.project.invoke("rollback", "--env", ENV, "--tag", new)
        assert forward.returncode == 0, forward.output
    if site.project.database(ENV)[0] != "0004":
        assert site.project.invoke("db.migrate", "--env", ENV).returncode == 0
    if not site.serves(new):
        up = site.project.invoke("stack.up", "--env", ENV, "--release", new, "--wait")
        assert up.returncode == 0, up.output
    assert site.serves(new) and site.project.database(ENV)[0] == "0004"
    assert site.good()[-1]["tag"] == new


@pytest.mark.parametrize("step", STEPS)
def test_a_signal_at_any_step_of_a_rollback_keeps_what_ran(
    releases: tuple[ProcessSite, str, str], step: str
) -> None:
    site, old, new = releases
    back_to(site, new)  # whatever a failed case before this one left
    count = len(site.project.journal(ENV))

    def begun() -> bool:
        return any(
            e["kind"] == "step.start" and e["step"] == step for e in site.journal_since(count)
        )

    proc = site.project.start("rollback", "--env", ENV, "--tag", old)
    try:
        wait_for(f"the rollback's {step} step", begun, proc, timeout=120)
        proc.send_signal(signal.SIGTERM)
    finally:
        out, err = stop_process(proc, timeout=180)
        site.recover()

    events = site.journal_since(count)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err
    stopped = [e["step"] for e in events if e["kind"] == "step.interrupted"]
    assert stopped and min(position(STEPS, s) for s in stopped) >= position(STEPS, step), events
    assert events[-1]["kind"] == "release" and events[-1]["result"] == "failed"
    assert site.serves(new) and site.good()[-1]["tag"] == new
    assert site.project.database(ENV)[0] == "0004"
    site.no_leftovers()
