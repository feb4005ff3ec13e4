"""Release retention: which release artifacts a deploy or rollback prunes once recorded."""

from __future__ import annotations

import io
from typing import Any

from deploytools.config import EnvironmentSettings
from deploytools.errors import CommandError
from deploytools.release import kept_releases
from deploytools.runtime.base import RUNNING, ServiceStatus
from deploytools.steps.base import RunContext
from deploytools.steps.deploy import plan_prune, prune_releases
from deploytools.testing import MemoryHost, run_context
from deploytools.ui import Ui


def tag(n: int) -> str:
    return f"release-t-2026120{n}T000000Z-abc{n}"


def test_the_last_n_distinct_good_tags_are_kept_newest_first() -> None:
    records = [
        {"tag": tag(1), "result": "ok"},
        {"tag": tag(2), "result": "ok"},
        {"tag": tag(3), "result": "failed"},
        {"tag": tag(4), "result": "ok"},
        {"tag": tag(2), "result": "ok", "action": "rollback"},  # back to 2: 2 is newest again
    ]
    assert list(kept_releases(records, 2)) == [tag(2), tag(4)]
    assert list(kept_releases(records, 5)) == [tag(2), tag(4), tag(1)]


class FakeRuntime:
    """What retention asks of a runtime: its stored releases, what runs, and removal."""

    def __init__(self, stored: list[str], running: str, fail_on: str = "") -> None:
        self.stored = stored
        self.running = running
        self.fail_on = fail_on
        self.removed: list[str] = []

    def stored_releases(self) -> list[str]:
        return list(self.stored)

    def status(self) -> dict[str, ServiceStatus]:
        return {"worker": ServiceStatus("worker", RUNNING, release=self.running)}

    def remove_release(self, release: str) -> list[str]:
        if release == self.fail_on:
            raise CommandError(["rm", "-rf", release], 1, "Permission denied", "mem")
        self.removed.append(release)
        return [release]


def context(runtime: FakeRuntime, release: str, keep: int) -> tuple[RunContext, io.StringIO]:
    host, err = MemoryHost(), io.StringIO()
    settings = EnvironmentSettings(
        name="t", env_file="x", env_example="y", runtime="process", releases={"keep": keep}
    )
    ui = Ui(stderr=err, stdout=io.StringIO())
    ctx = run_context(settings, host, ui, release=release, _runtime=runtime)
    return ctx, err


def journal_of(ctx: RunContext, records: list[dict[str, Any]]) -> None:
    for record in records:
        ctx.journal.append("release", **record)


def test_a_deploy_keeps_the_last_n_good_and_what_runs_and_removes_the_rest() -> None:
    stored = [tag(n) for n in range(1, 8)] + ["dev"]  # dev: built by hand, never pruned
    runtime = FakeRuntime(stored, running=tag(2))  # a worker still runs 2 (a stack.up)
    ctx, _ = context(runtime, tag(7), keep=2)
    history = [{"tag": tag(n), "result": "ok"} for n in range(1, 6)]
    journal_of(ctx, [*history, {"tag": tag(6), "result": "failed"}])

    plan = plan_prune(ctx)  # before the record: this run's release counts as good
    assert plan == [
        f"release retention: remove release {tag(n)} (not among the last 2 good releases, "
        "not running)"
        for n in (1, 2, 3, 4, 6)
    ]
    assert runtime.removed == []

    journal_of(ctx, [{"tag": tag(7), "result": "ok"}])
    done = prune_releases(ctx)

    assert runtime.removed == [tag(1), tag(3), tag(4), tag(6)]  # 2 runs: kept
    assert done == {"pruned": runtime.removed, "kept": sorted([tag(5), tag(7), tag(2)])}


def test_a_prune_that_fails_warns_and_leaves_the_run_recorded() -> None:
    runtime = FakeRuntime([tag(1), tag(2), tag(3)], running=tag(3), fail_on=tag(2))
    ctx, err = context(runtime, tag(3), keep=1)
    journal_of(ctx, [{"tag": tag(n), "result": "ok"} for n in (1, 2, 3)])
    done = prune_releases(ctx)
    assert done["pruned"] == [tag(1)] and "Permission denied" in done["prune_error"]
    assert "release retention stopped (the release is recorded)" in err.getvalue()


def test_nothing_stored_says_nothing() -> None:
    ctx, _ = context(FakeRuntime([], running=tag(1)), tag(1), keep=1)
    assert plan_prune(ctx) == [] and prune_releases(ctx) == {}
