"""The start's undo when the engine went away, a failed check that a full disk explains, and
what "running" means to a rollback: steps against a scripted runtime, on the real clock."""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from deploytools.config import EnvironmentSettings
from deploytools.errors import DeployFailure
from deploytools.pipelines.rollback import _running_now
from deploytools.probes.celery import CeleryCheckFailed
from deploytools.runtime.base import ImageCheck, ServiceStatus, disk_full, whole_release
from deploytools.steps.base import RunContext
from deploytools.steps.common import Start, disk_said
from deploytools.testing import MemoryHost, run_context
from deploytools.ui import Ui


class Runtime:
    """An engine that answers from the ``answers_from``-th question on (None: never)."""

    kind = "compose"

    def __init__(self, answers_from: int | None = 1, states: dict[str, Any] | None = None):
        self.answers_from = answers_from
        self.asked: list[float] = []
        self.ups: list[str] = []
        self.states = states or {"web": ("running", "r0"), "worker": ("running", "r0")}
        self.logs_of = {"web": "", "worker": ""}
        self.full: str | None = None
        self.restarts: int | None = None

    def unreachable(self, timeout: float) -> str | None:
        self.asked.append(time.monotonic())
        if self.answers_from is not None and len(self.asked) >= self.answers_from:
            return None
        return "the Docker engine on mem"

    def up(self, release: str, services: Sequence[str] = ()) -> None:
        self.ups.append(release)

    def image_check(self, release: str, recorded: Mapping[str, str]) -> ImageCheck:
        return ImageCheck()  # the images are the ones recorded

    def retag(self, images: Mapping[str, str]) -> None:
        raise AssertionError("nothing to re-tag")

    def status(self) -> dict[str, ServiceStatus]:
        if self.states == "gone":
            raise DeployFailure("the Docker engine on mem is unreachable: ...")
        return {
            n: ServiceStatus(n, s, release=r, restarts=self.restarts)
            for n, (s, r) in self.states.items()
        }

    def logs(self, service: str, lines: int = 50) -> str:
        return self.logs_of[service]

    def one_shots(self) -> set[str]:
        return {"migrate"}  # done once it exited: never what decides the release

    def out_of_space(self) -> str | None:
        if self.full == "cannot tell":
            raise DeployFailure("the Docker engine on mem is unreachable")
        return self.full


def context(runtime: Runtime, engine: float = 5.0) -> tuple[RunContext, io.StringIO]:
    host = MemoryHost()
    err = io.StringIO()
    settings = EnvironmentSettings(
        name="t", env_file="x", env_example="y", runtime="compose",
        compose={"project_name": "p"}, timeouts={"engine": engine},
    )  # fmt: skip
    ctx = run_context(settings, host, Ui(stderr=err, stdout=io.StringIO()))
    ctx.facts.previous_release = "r0"
    ctx._runtime = runtime  # type: ignore[assignment]
    return ctx, err


def test_the_undo_waits_for_an_engine_that_went_away_then_restores() -> None:
    runtime = Runtime(answers_from=4)
    ctx, err = context(runtime)
    began = time.monotonic()
    said = Start().undo(ctx)
    took = time.monotonic() - began
    assert runtime.ups == ["r0"]
    assert said.startswith("release r0 started again once the Docker engine on mem answered")
    said = " ".join(err.getvalue().split())
    assert "the Docker engine on mem does not answer: waiting up to 5 s" in said
    assert len(runtime.asked) == 4
    gaps = [b - a for a, b in zip(runtime.asked, runtime.asked[1:], strict=False)]
    assert all(0.45 <= gap <= 1.0 for gap in gaps), gaps  # asked every half second
    assert 1.4 <= took <= 3.0


def test_an_engine_that_answers_is_not_waited_for() -> None:
    runtime = Runtime()
    ctx, err = context(runtime)
    assert Start().undo(ctx) == "release r0 started again"
    assert len(runtime.asked) == 1 and err.getvalue() == ""


def test_an_engine_that_never_comes_back_leaves_nothing_restored_and_says_how() -> None:
    runtime = Runtime(answers_from=None)
    ctx, err = context(runtime, engine=1.2)
    began = time.monotonic()
    with pytest.raises(DeployFailure) as failure:
        Start().undo(ctx)
    took = time.monotonic() - began
    assert 1.2 <= took <= 2.5
    assert runtime.ups == []
    assert failure.value.problem == (
        "nothing was restored: the Docker engine on mem did not answer within 1.2 s"
    )
    assert failure.value.fix == "when it is back run invoke stack.up --env t --release r0"
    said = " ".join(err.getvalue().split())  # said plainly, not only in the summary table
    assert " ".join(str(failure.value).split()) in said


def test_a_failed_check_says_first_that_the_disk_is_full() -> None:
    runtime = Runtime()
    runtime.full = "a disk is full on mem: worker stopped with 'No space left on device'"
    ctx, _ = context(runtime)

    @disk_said
    def check(ctx: RunContext) -> None:
        raise CeleryCheckFailed("no-workers", "no worker answering: none within 10s")

    with pytest.raises(CeleryCheckFailed) as failure:
        check(ctx)
    assert failure.value.kind == "no-workers"  # the same failure, said better
    assert failure.value.problem == f"{runtime.full}\nno worker answering: none within 10s"
    assert str(failure.value).startswith(runtime.full)


@pytest.mark.parametrize("full", [None, "cannot tell"])
def test_a_failed_check_without_a_full_disk_keeps_its_words(full: str | None) -> None:
    runtime = Runtime()
    runtime.full = full
    ctx, _ = context(runtime)

    @disk_said
    def check(ctx: RunContext) -> None:
        raise DeployFailure("backend not healthy after 60s")

    with pytest.raises(DeployFailure) as failure:
        check(ctx)
    assert failure.value.problem == "backend not healthy after 60s"


def test_disk_full_names_only_stopped_services_whose_log_says_so() -> None:
    runtime = Runtime(states={"web": ("running", "r1"), "worker": ("restarting", "r1")})
    runtime.logs_of = {"web": "No space left on device", "worker": "ok"}
    assert disk_full(runtime, "mem", lambda: "?") is None  # type: ignore[arg-type]
    runtime.logs_of["worker"] = "dd: error writing '/fill': No space left on device\n"
    assert disk_full(runtime, "mem", lambda: "/data: 0.0 MB free") == (  # type: ignore[arg-type]
        "a disk is full on mem: worker stopped with 'No space left on device' "
        "(/data: 0.0 MB free)"
    )


def test_disk_full_names_a_service_caught_running_again_after_a_restart() -> None:
    """A restart policy brings the dead worker back: between two crashes it shows `running`,
    and only its restart count tells that it stopped."""
    runtime = Runtime(states={"worker": ("running", "r1")})
    runtime.logs_of = {"worker": "dd: error writing '/scratch/f': No space left on device\n"}
    assert disk_full(runtime, "mem", lambda: "?") is None  # type: ignore[arg-type]
    runtime.restarts = 2
    assert disk_full(runtime, "mem", lambda: "?") == (  # type: ignore[arg-type]
        "a disk is full on mem: worker stopped with 'No space left on device' (?)"
    )


@pytest.mark.parametrize(
    ("states", "whole"),
    [
        ({"web": ("running", "r1"), "worker": ("running", "r1")}, "r1"),
        ({"web": ("running", "r1"), "db": ("running", "16-alpine")}, "r1"),  # not a release
        ({"web": ("created", "r2"), "worker": ("created", "r2")}, None),  # a start cut short
        ({"web": ("running", "r1"), "worker": ("created", "r2")}, None),
        ({"web": ("running", "r1"), "worker": ("running", "r2")}, None),
        ({"web": ("missing", ""), "worker": ("missing", "")}, None),
        ({"web": ("running", "r1"), "migrate": ("exited", "r1")}, "r1"),  # a one-shot, done
    ],
)
def test_a_release_runs_when_every_service_runs_it(
    states: dict[str, Any], whole: str | None
) -> None:
    assert whole_release(Runtime(states=states), {"r0", "r1", "r2"}) == whole  # type: ignore[arg-type]


def test_a_rollback_asks_the_runtime_what_runs_and_the_journal_only_when_it_cannot() -> None:
    """The journal's last good release r0 sat in `Created` after dockerd restarted: a rollback
    to it is no "already running"."""
    cut_short = Runtime(states={"web": ("created", "r1"), "worker": ("created", "r1")})
    recorded = {"r0", "r1"}
    assert _running_now(context(cut_short)[0], recorded) is None
    assert _running_now(context(Runtime())[0], recorded) == "r0"
    gone = Runtime(states="gone")  # type: ignore[arg-type]
    assert _running_now(context(gone)[0], recorded) == "r0"
