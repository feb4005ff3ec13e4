"""A Docker engine that goes away during a deploy's start, and one without room to start.

Each test has a Docker engine of its own (``ExtraEngine``: its own socket and data root), so
it may stop it, restart it or fill its disk; the CLI reaches it through ``DOCKER_HOST`` in its
environment. The app is the tiny busybox one (``tinyapp``): an image built in a second, so a
test here is mostly the engine's own start and stop.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.deployproject import stop_process
from tests.support.extra_engine import ExtraEngine
from tests.support.processdeploy import wait_for
from tests.support.tinyapp import ENV, TinySite

pytestmark = pytest.mark.integration

DOWN_FOR = 10.0  # seconds the engine stays away (a dockerd restart that takes its time)
MB = 1024 * 1024


@pytest.fixture
def engine() -> Iterator[ExtraEngine]:
    with ExtraEngine() as own:
        yield own


def flat(text: str) -> str:
    """Output with its line wrapping undone (rich wraps long lines)."""
    return " ".join(text.split())


def started(site: TinySite, count: int) -> bool:
    return any(
        e["kind"] == "step.start" and e.get("step") == "start" for e in site.journal_since(count)
    )


def test_an_engine_stopped_for_10s_during_start_is_waited_for_and_the_release_before_serves(
    engine: ExtraEngine, tmp_path: Path
) -> None:
    """dockerd SIGTERMed as the start begins and back 10 s later: the deploy says the engine
    was unreachable (not that images are missing), its undo waits for the engine and the
    release before serves again, as `releases` says."""
    site = TinySite(tmp_path / "app", engine)
    v1 = site.deployed()
    site.release("v2")
    count = len(site.project.journal(ENV))

    proc = site.start_deploy()
    try:
        wait_for("the start", lambda: started(site, count), proc, timeout=120)
        engine.terminate()
        stopped_at = time.monotonic()
        engine.wait_stopped()
        time.sleep(max(0.0, stopped_at + DOWN_FOR - time.monotonic()))
        engine.start()
    finally:
        out, err = stop_process(proc, timeout=300)

    said = flat(out + err)
    assert proc.returncode == 1, said
    assert "deploy failed at step 'start': the Docker engine on local is unreachable" in said
    assert "are not on" not in said
    assert f"does not answer: waiting up to 60 s for it to restore {v1}" in said
    events = site.journal_since(count)
    undone = [e["result"] for e in events if e["kind"] == "undo.done" and e["step"] == "start"]
    assert len(undone) == 1 and undone[0].startswith(f"release {v1} started again once")
    assert "answered again" in undone[0]
    assert f"release {v1} verified healthy again" in said
    assert site.serves() == v1
    image = f"{site.image}:{v1}"
    assert {s: c[:2] for s, c in site.containers().items()} == {
        "web": (image, "running"),
        "worker": (image, "running"),
    }
    assert site.marked_running()[0] == [v1]


def test_an_engine_that_does_not_come_back_in_time_leaves_the_way_back_said(
    tmp_path: Path, engine: ExtraEngine
) -> None:
    """dockerd stopped while compose recreates the containers (its first `create` of the new
    release), back only after the deploy gave up: nothing was restored, and the output says
    how to restore; then `releases` does not claim the release before runs and `rollback` to
    it is no "already running" (today both new containers sat in Created)."""
    site = TinySite(tmp_path / "app", engine, timeouts={"engine": 3})
    v1 = site.deployed()
    site.release("v2")
    created = engine.events(
        "type=container",
        "event=create",
        f"label=com.docker.compose.project={site.compose_project}",
        fmt='{{index .Actor.Attributes "image"}}',
    )

    stopped = threading.Event()

    def stop_at_the_first_new_container() -> None:
        assert created.stdout is not None
        for line in created.stdout:  # ends when the engine stops or the stream is killed
            if line.strip() and line.split()[0] != f"{site.image}:{v1}":
                engine.terminate()
                stopped.set()
                return

    watcher = threading.Thread(target=stop_at_the_first_new_container, daemon=True)
    watcher.start()
    proc = site.start_deploy()
    try:
        wait_for("a container of the new release", stopped.is_set, proc, timeout=120)
    finally:
        out, err = stop_process(proc, timeout=300)
        created.kill()  # its stream ends: the watcher with it
        watcher.join(30)
        created.wait(30)
        assert created.stdout is not None
        created.stdout.close()
    engine.wait_stopped()

    said = flat(out + err)
    assert proc.returncode == 1, said
    assert "the Docker engine on local is unreachable" in said
    assert (
        "nothing was restored: the Docker engine on local did not answer within 3 s fix: when "
        f"it is back run invoke stack.up --env {ENV} --release {v1}"
    ) in said
    engine.start()
    states = site.containers()
    assert not all(c[:2] == (f"{site.image}:{v1}", "running") for c in states.values()), states
    marked, warned = site.marked_running()
    assert marked == []
    assert f"the journal says {v1} runs, but no release on every service on local" in warned

    back = site.cli("rollback", "--env", ENV, "--tag", v1)

    assert back.returncode == 0, back.output
    assert site.serves() == v1
    assert site.marked_running()[0] == [v1]


@pytest.fixture
def small_engine() -> Iterator[ExtraEngine]:
    """An engine whose data root is a 64 MB file system."""
    with ExtraEngine(data_root_mb=64) as own:
        yield own


def test_a_nearly_full_data_root_refuses_the_start_before_anything_stops(
    small_engine: ExtraEngine, tmp_path: Path
) -> None:
    """Room for the build, not for the containers: the deploy refuses before compose stops
    anything (same containers, still serving), and says where and how much."""
    site = TinySite(tmp_path / "app", small_engine, compose={"min_free_mb": 24})
    v1 = site.deployed()
    before = site.containers()
    site.release("v2")
    filler = small_engine.data_root / "filler"
    with filler.open("wb") as out:  # leave 12 MB: enough for the build (about 2 MB)
        out.write(b"\0" * (small_engine.free_bytes() - 12 * MB))
    try:
        run = site.deploy()
    finally:
        filler.unlink()

    said = flat(run.output)
    assert run.returncode == 1, said
    assert "deploy failed at step 'start': not enough room to start release" in said
    root = small_engine.data_root
    assert f"Docker's data root {root} has" in said
    assert "needed (images 1.9 MB + compose.min_free_mb 24 MB); nothing was stopped" in said
    assert site.containers() == before  # not one container stopped or recreated
    assert site.serves() == v1
    build = [e for e in site.project.journal(ENV) if e.get("step") == "build"][-1]
    assert build["kind"] == "step.done"  # it was the start that was refused


def test_a_worker_that_dies_of_a_full_disk_is_said_to(
    engine: ExtraEngine, tmp_path: Path
) -> None:
    """The worker of the new release writes to its 1 MB tmpfs until `No space left on device`
    and exits: the deploy's failure says a disk is full (and that it is not the data root),
    not only that the worker stopped."""
    site = TinySite(tmp_path / "app", engine)
    v1 = site.deployed()
    site.release("v2: a worker that fills a disk", worker="dd if=/dev/zero of=/scratch/f; exit 1\n")

    run = site.deploy()

    said = flat(run.output)
    assert run.returncode == 1, said
    assert (
        "deploy failed at step 'wait healthy': a disk is full on local: worker stopped with "
        f"'No space left on device' (Docker's data root {engine.data_root}: "
    ) in said
    assert "MB free; the full one is a volume or tmpfs the service writes to)" in said
    assert site.serves() == v1


def stuck_in_removal(engine: ExtraEngine, container: str) -> None:
    """Make a removal of ``container`` fail half-way, as a busy file system does: the engine
    keeps it "removing" (and "dead" once restarted); the cause is then gone."""
    upper = engine.check("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", container)
    pinned = Path(upper.strip()) / "pinned"
    pinned.write_text("busy")
    subprocess.run(["chattr", "+i", str(pinned)], check=True, timeout=30)
    try:
        removal = engine.docker("rm", "--force", container)
        assert removal.returncode != 0 and "operation not permitted" in removal.stderr
    finally:
        subprocess.run(["chattr", "-i", str(pinned)], check=True, timeout=30)


def test_a_container_stuck_in_removal_is_removed_before_the_start_also_after_a_restart(
    engine: ExtraEngine, tmp_path: Path
) -> None:
    """A removal that failed half-way leaves the release's own container "removing", and an
    engine restart makes it "dead": compose would start that container again (its config is
    the one wanted) and fail ("marked for removal"); a rollback to the release removes it first
    and serves, in both states."""
    site = TinySite(tmp_path / "app", engine)
    v1 = site.deployed()
    running = {service: (f"{site.image}:{v1}", "running") for service in ("web", "worker")}
    for restart in (False, True):
        stuck_in_removal(engine, site.containers()["web"][2])
        if restart:
            engine.terminate()
            engine.wait_stopped()
            engine.start()
        assert site.containers()["web"][1] == ("dead" if restart else "removing")

        back = site.cli("rollback", "--env", ENV, "--tag", v1)

        assert back.returncode == 0, back.output
        assert site.serves() == v1
        assert {s: c[:2] for s, c in site.containers().items()} == running
