"""A Docker engine that goes away during a deploy's start.

Each test has a Docker engine of its own (``ExtraEngine``: its own socket and data root), so
it may stop it and restart it; the CLI reaches it through ``DOCKER_HOST`` in its
environment. The app is the tiny busybox one (``tinyapp``): an image built in a second, so a
test here is mostly the engine's own start and stop.
"""

from __future__ import annotations

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
