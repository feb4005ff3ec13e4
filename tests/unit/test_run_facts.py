"""What steps learn (``Facts``): a host's context takes the run's later facts but keeps its
own, and an undo that needs a backup none was taken for says so instead of failing blind."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploytools.errors import DeployFailure
from deploytools.steps.base import Facts
from deploytools.steps.deploy import restore_backup
from deploytools.testing import MemoryHost, run_context, settings_for


def test_a_host_learns_the_runs_facts_and_keeps_its_own() -> None:
    run = Facts(previous_release="r1", sha="abc")
    host = Facts(previous_release="r0", start_began=5.0, sha="abc")
    run.backup, run.revision, run.images = "b-1", "a2", {"web": "sha256:1"}

    host.learn(run)

    assert (host.backup, host.revision, host.images) == ("b-1", "a2", {"web": "sha256:1"})
    assert (host.previous_release, host.start_began) == ("r0", 5.0)  # what its Start saw


def test_taking_the_database_back_without_a_backup_is_a_clear_failure(tmp_path: Path) -> None:
    host = MemoryHost()
    ctx = run_context(settings_for(tmp_path), host, release="r2")

    with pytest.raises(DeployFailure) as caught:
        restore_backup(ctx, None, "a2 -> a1")

    assert "a2 -> a1" in caught.value.problem and "no backup was taken" in caught.value.problem
    assert host.commands == []  # nothing was tried
