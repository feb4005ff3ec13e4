"""The rollout strategy's exact semantics: batches, the bound on parallelism, the failure
budget at its boundary and one above it, the canary, reverts, and stopping.

Hosts are names and ``per_host`` a fake; no test sleeps or reads a stopwatch: the clock is
injected, concurrency is shown with barriers and events (their timeouts only bound a test
that went wrong).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from deploytools.errors import DeployFailure, Interrupted, OperatorError
from deploytools.interrupts import INTERRUPTS
from deploytools.pipeline.rollout import (
    ROW_COLUMNS,
    RolloutPolicy,
    plan_batches,
    resolve_count,
    revert_changed,
    run_rollout,
)

HOSTS = ["web-1", "web-2", "web-3", "web-4"]
BOUND = 10.0  # seconds: only for a test that went wrong


class Fleet:
    """``run`` and ``revert`` for named hosts: the hosts in ``fail`` (or ``revert_fail``)
    raise their exception; every call is recorded in order."""

    def __init__(
        self,
        fail: dict[str, BaseException] | None = None,
        revert_fail: dict[str, BaseException] | None = None,
    ) -> None:
        self.fail = fail or {}
        self.revert_fail = revert_fail or {}
        self.ran: list[str] = []
        self.reverted: list[str] = []
        self.lock = threading.Lock()

    def run(self, host: str) -> str:
        return self._call(host, self.ran, self.fail, f"{host} on r2")

    def revert(self, host: str) -> str:
        return self._call(host, self.reverted, self.revert_fail, f"{host} back on r1")

    def _call(self, host: str, log: list[str], fail: dict[str, BaseException], said: str) -> str:
        with self.lock:
            log.append(host)
        if host in fail:
            raise fail[host]
        return said


class Peak:
    """A call that waits until ``parties`` calls run at once (the barrier breaks, failing
    the call, if they never do) and counts the most that ever ran at once."""

    def __init__(self, parties: int) -> None:
        self.together = threading.Barrier(parties, timeout=BOUND)
        self.lock = threading.Lock()
        self.active = self.peak = 0

    def __call__(self, host: str) -> None:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        self.together.wait()
        with self.lock:
            self.active -= 1


def boom(host: str) -> DeployFailure:
    return DeployFailure(f"backend on {host} did not get healthy")


# -- counts and batches ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "total", "expected"),
    [("25%", 4, 1), ("30%", 4, 1), ("50%", 4, 2), ("100%", 4, 4), ("25%", 3, 1), ("1%", 8, 1)],
)
def test_a_batch_percentage_is_floored_and_at_least_one_host(
    value: str, total: int, expected: int
) -> None:
    assert resolve_count(value, total, key="rollout.batch_size") == expected


@pytest.mark.parametrize(
    ("value", "total", "expected"),
    [("10%", 4, 0), ("25%", 4, 1), ("49%", 4, 1), ("50%", 5, 2), ("100%", 3, 3), (0, 3, 0)],
)
def test_a_failure_budget_percentage_is_floored_down_to_zero(
    value: str | int, total: int, expected: int
) -> None:
    assert resolve_count(value, total, key="rollout.max_fail", minimum=0) == expected


@pytest.mark.parametrize("value", ["0%", "101%", "-5%", "x%", "25", 0, -1, True])
def test_a_count_or_percentage_out_of_range_is_refused_naming_the_key(
    value: str | int,
) -> None:
    with pytest.raises(OperatorError) as refused:
        resolve_count(value, 4, key="rollout.batch_size")
    assert str(refused.value).startswith(f"rollout.batch_size = {value!r}: ")


def test_a_negative_failure_budget_is_refused() -> None:
    with pytest.raises(OperatorError, match=r"rollout\.max_fail = -1"):
        RolloutPolicy.resolve(4, max_fail=-1)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"max_parallel": 0}, "max_parallel"),
        ({"batch_size": 0}, "batch_size"),
        ({"pause": -1.0}, "pause"),
        ({"max_fail": -2}, "max_fail"),
        ({"on_failure": "retry"}, "on_failure"),
    ],
)
def test_a_policy_out_of_range_names_its_key(settings: dict[str, object], key: str) -> None:
    with pytest.raises(OperatorError, match=rf"^rollout\.{key} = "):
        RolloutPolicy(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("batch_size", "expected"),
    [
        ("25%", [["web-1"], ["web-2"], ["web-3"], ["web-4"]]),
        ("30%", [["web-1"], ["web-2"], ["web-3"], ["web-4"]]),
        ("50%", [["web-1", "web-2"], ["web-3", "web-4"]]),
        ("100%", [HOSTS]),
        (3, [["web-1", "web-2", "web-3"], ["web-4"]]),
        (9, [HOSTS]),
        (None, [HOSTS]),
    ],
)
def test_batches_are_slices_of_the_hosts_in_order(
    batch_size: str | int | None, expected: list[list[str]]
) -> None:
    policy = RolloutPolicy.resolve(len(HOSTS), batch_size=batch_size, on_failure="halt")
    assert plan_batches(HOSTS, policy) == expected


def test_the_canary_is_the_first_host_alone_then_the_rest_by_batch_size() -> None:
    five = [*HOSTS, "web-5"]
    policy = RolloutPolicy(batch_size=2, canary=True)
    assert plan_batches(five, policy) == [["web-1"], ["web-2", "web-3"], ["web-4", "web-5"]]
    assert plan_batches(five, RolloutPolicy(canary=True)) == [["web-1"], five[1:]]
    assert plan_batches(["web-1"], policy) == [["web-1"]]
    assert plan_batches([], policy) == []


# -- running --------------------------------------------------------------------------------


def test_every_host_runs_batch_after_batch_with_a_pause_between_two() -> None:
    fleet, pauses, began = Fleet(), [], []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)

    policy = RolloutPolicy(batch_size=2, pause=30.0, max_parallel=1)
    result = run_rollout(
        HOSTS,
        fleet.run,
        policy,
        revert=fleet.revert,
        sleep=sleep,
        on_batch=lambda n, hosts: began.append((n, list(hosts))),
    )
    assert result.ok and not result.budget_exceeded and not result.interrupted
    assert fleet.ran == HOSTS and fleet.reverted == []
    assert pauses == [30.0]  # between the two batches, not after the last
    assert began == [(1, ["web-1", "web-2"]), (2, ["web-3", "web-4"])]
    assert [(o.name, o.state, o.batch, o.value) for o in result.outcomes] == [
        ("web-1", "ok", 1, "web-1 on r2"),
        ("web-2", "ok", 1, "web-2 on r2"),
        ("web-3", "ok", 2, "web-3 on r2"),
        ("web-4", "ok", 2, "web-4 on r2"),
    ]
    assert result.changed_hosts() == HOSTS
    assert result.summary() == "4 of 4 hosts switched in 2 batches"


def test_each_host_is_timed_by_the_injected_clock() -> None:
    now = [100.0]

    def per_host(host: str) -> None:
        now[0] += 2.5 if host == "web-1" else 4.0

    result = run_rollout(
        HOSTS[:2], per_host, RolloutPolicy(on_failure="halt"), clock=lambda: now[0]
    )
    assert [o.seconds for o in result.outcomes] == [2.5, 4.0]
    assert [row[3] for row in result.as_rows()] == ["2.5", "4.0"]


def test_no_more_than_max_parallel_hosts_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    six = [f"web-{i}" for i in range(1, 7)]
    threads: list[str] = []

    class Counted(threading.Thread):
        def start(self) -> None:
            threads.append(self.name)
            super().start()

    monkeypatch.setattr(threading, "Thread", Counted)
    per_host = Peak(3)
    result = run_rollout(six, per_host, RolloutPolicy(max_parallel=3, on_failure="halt"))
    assert result.ok, result.summary()
    assert per_host.peak == 3
    assert threads == ["rollout"] * 3  # each runs one host at a time


def test_reverts_too_run_at_most_max_parallel_at_once() -> None:
    fleet, revert = Fleet(fail={"web-4": boom("web-4")}), Peak(2)
    policy = RolloutPolicy(max_parallel=2, batch_size=4)
    result = run_rollout(HOSTS, fleet.run, policy, revert=revert)
    assert [o.state for o in result.outcomes] == ["reverted"] * 4  # web-4 failed last
    assert revert.peak == 2


# -- the failure budget ---------------------------------------------------------------------


def test_failures_exactly_at_the_budget_let_the_rollout_go_on_to_the_end() -> None:
    fleet = Fleet(fail={"web-2": boom("web-2")})
    policy = RolloutPolicy(batch_size=1, max_fail=1)
    result = run_rollout(HOSTS, fleet.run, policy, revert=fleet.revert)
    assert fleet.ran == HOSTS and fleet.reverted == []
    assert result.ok and not result.budget_exceeded and result.failed == 1
    assert [o.state for o in result.outcomes] == ["ok", "failed", "ok", "ok"]
    assert result.summary() == (
        "3 of 4 hosts switched in 4 batches; failed within max_fail = 1: web-2"
    )


def test_one_failure_above_the_budget_stops_later_batches_and_reverts_every_changed_host() -> None:
    # The budget is over the whole rollout: one failure in batch 2, one in batch 3.
    fleet = Fleet(fail={"web-2": boom("web-2"), "web-3": boom("web-3")})
    pauses: list[float] = []
    policy = RolloutPolicy(batch_size=1, max_fail=1, pause=5.0)
    result = run_rollout(HOSTS, fleet.run, policy, revert=fleet.revert, sleep=pauses.append)
    assert fleet.ran == ["web-1", "web-2", "web-3"]
    assert pauses == [5.0, 5.0]  # none once the budget is exceeded
    assert sorted(fleet.reverted) == ["web-1", "web-2", "web-3"]  # the failed ones too
    assert result.budget_exceeded and not result.ok and not result.interrupted
    assert [o.state for o in result.outcomes] == ["reverted", "reverted", "reverted", "not_started"]
    assert result.changed_hosts() == []
    assert result.summary() == (
        "1 of 4 hosts switched in 4 batches; 2 hosts failed, more than max_fail = 1 allows:"
        " the rollout stopped; not started: web-4; reverted: web-1, web-2, web-3"
    )


def test_over_the_budget_with_halt_nothing_is_reverted_and_the_changed_hosts_are_named() -> None:
    fleet = Fleet(fail={"web-2": boom("web-2"), "web-3": boom("web-3")})
    policy = RolloutPolicy(batch_size=1, max_fail=1, on_failure="halt")
    result = run_rollout(HOSTS, fleet.run, policy, revert=fleet.revert)
    assert fleet.ran == ["web-1", "web-2", "web-3"] and fleet.reverted == []
    assert [o.state for o in result.outcomes] == ["ok", "failed", "failed", "not_started"]
    assert result.changed_hosts() == ["web-1", "web-2", "web-3"]
    assert result.summary().endswith(
        "; not started: web-4"
        "; left on the new release or half-way (on_failure = halt): web-1, web-2, web-3"
    )


def test_with_no_budget_the_first_failure_stops_the_rest_of_its_batch_too() -> None:
    fleet = Fleet(fail={"web-1": boom("web-1")})
    policy = RolloutPolicy(batch_size=4, max_parallel=1, on_failure="halt")
    result = run_rollout(HOSTS, fleet.run, policy)
    assert fleet.ran == ["web-1"]
    assert [o.state for o in result.outcomes] == ["failed"] + ["not_started"] * 3


def test_an_unreachable_host_counts_as_failed() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    fleet = Fleet(fail={"web-3": refused})
    result = run_rollout(HOSTS, fleet.run, RolloutPolicy(batch_size=2), revert=fleet.revert)
    assert result.budget_exceeded and result.failed == 1
    assert result.outcomes[2].error == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert fleet.ran == ["web-1", "web-2", "web-3"]  # one at a time: web-4 never began
    assert sorted(fleet.reverted) == ["web-1", "web-2", "web-3"]


def test_a_failing_canary_stops_everything_whatever_the_budget() -> None:
    fleet = Fleet(fail={"web-1": boom("web-1")})
    policy = RolloutPolicy(canary=True, max_fail=3, batch_size=1)
    result = run_rollout(HOSTS, fleet.run, policy, revert=fleet.revert)
    assert result.canary_failed and not result.budget_exceeded and not result.ok
    assert fleet.ran == ["web-1"] and fleet.reverted == ["web-1"]
    assert result.summary().startswith(
        "0 of 4 hosts switched in 4 batches; the canary web-1 failed: nothing else ran"
    )


def test_a_revert_that_fails_is_reported_not_hidden() -> None:
    fleet = Fleet(
        fail={"web-2": boom("web-2")},
        revert_fail={"web-1": DeployFailure("previous release did not get healthy")},
    )
    policy = RolloutPolicy(batch_size=2, max_parallel=1)
    now = [0.0]
    result = run_rollout(HOSTS, fleet.run, policy, revert=fleet.revert, clock=lambda: now[0])
    assert [o.state for o in result.outcomes] == [
        "revert_failed",
        "reverted",
        "not_started",
        "not_started",
    ]
    assert result.changed_hosts() == ["web-1"]
    assert ROW_COLUMNS == ["host", "batch", "state", "seconds", "error"]
    assert result.as_rows() == [
        ["web-1", "1", "revert_failed", "0.0", "revert: previous release did not get healthy"],
        ["web-2", "1", "failed, then reverted", "0.0", "backend on web-2 did not get healthy"],
        ["web-3", "2", "not_started", "", ""],
        ["web-4", "2", "not_started", "", ""],
    ]
    assert "revert FAILED on: web-1" in result.summary()
    assert "left on the new release or half-way (not reverted): web-1" in result.summary()
    data = result.as_dict()
    assert {k: v for k, v in data.items() if k != "hosts"} == {
        "ok": False,
        "interrupted": False,
        "budget_exceeded": True,
        "canary_failed": False,
        "failed": 1,
        "max_fail": 0,
        "on_failure": "rollback",
        "batches": [["web-1", "web-2"], ["web-3", "web-4"]],
        "changed": ["web-1"],
    }
    assert data["hosts"][0] == {
        "host": "web-1",
        "batch": 1,
        "state": "revert_failed",
        "ran": "ok",
        "seconds": 0.0,
        "revert_seconds": 0.0,
        "revert_error": "previous release did not get healthy",
    }
    assert data["hosts"][3] == {
        "host": "web-4",
        "batch": 2,
        "state": "not_started",
        "ran": "not_started",
        "seconds": 0.0,
    }


def test_rollback_without_a_revert_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="needs a revert"):
        run_rollout(HOSTS, Fleet().run, RolloutPolicy())


def test_a_host_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        run_rollout(["web-1", "web-1"], Fleet().run, RolloutPolicy(on_failure="halt"))


# -- stopping -------------------------------------------------------------------------------


def test_stopping_during_the_pause_prevents_the_next_batch_and_reverts_nothing() -> None:
    fleet, stopping = Fleet(), threading.Event()

    def sleep(seconds: float) -> None:
        stopping.set()  # as a signal would, during the pause

    policy = RolloutPolicy(batch_size=2, pause=60.0)
    result = run_rollout(
        HOSTS, fleet.run, policy, revert=fleet.revert, stopping=stopping, sleep=sleep
    )
    assert result.interrupted and not result.ok and not result.budget_exceeded
    assert fleet.ran == ["web-1", "web-2"] and fleet.reverted == []
    assert result.changed_hosts() == ["web-1", "web-2"]  # for the caller's undo
    revert_changed(result, fleet.revert)
    assert sorted(fleet.reverted) == ["web-1", "web-2"]
    assert [o.state for o in result.outcomes] == ["reverted", "reverted"] + ["not_started"] * 2
    assert result.changed_hosts() == []


def test_stopping_set_while_a_batch_runs_starts_no_further_host_nor_batch() -> None:
    stopping, batches = threading.Event(), []

    def per_host(host: str) -> None:
        stopping.set()  # told after web-1's work had ended well

    policy = RolloutPolicy(batch_size=2, max_parallel=1, on_failure="halt")
    result = run_rollout(
        HOSTS, per_host, policy, stopping=stopping, on_batch=lambda n, _: batches.append(n)
    )
    assert result.interrupted and batches == [1]
    assert [o.state for o in result.outcomes] == ["ok"] + ["not_started"] * 3


def test_a_host_that_fails_because_told_to_stop_is_interrupted_not_failed() -> None:
    stopping = threading.Event()
    first_in = threading.Event()

    def per_host(host: str) -> None:
        if host == "web-1":
            first_in.set()
            if stopping.wait(BOUND):  # what RunContext.pause does
                raise Interrupted("told to stop")
        else:
            first_in.wait(BOUND)
            raise Interrupted("SIGINT")

    policy = RolloutPolicy(max_parallel=2, batch_size=2, max_fail=0, on_failure="halt")
    result = run_rollout(HOSTS, per_host, policy, stopping=stopping)
    assert result.interrupted and not result.budget_exceeded and result.failed == 0
    assert [o.state for o in result.outcomes] == [
        "interrupted",
        "interrupted",
        "not_started",
        "not_started",
    ]
    assert result.changed_hosts() == ["web-1", "web-2"]


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    """SIGINT raises Interrupted in the main thread, whatever disposition we inherited."""
    previous = signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted("SIGINT")


@pytest.mark.usefixtures("sigint_raises")
def test_a_signal_while_hosts_run_starts_no_new_host_and_waits_for_the_running_one() -> None:
    stopping, returned = threading.Event(), threading.Event()

    def per_host(host: str) -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)  # reaches the main thread, which waits
            if stopping.wait(BOUND):
                raise Interrupted("told to stop")
        finally:
            returned.set()

    policy = RolloutPolicy(max_parallel=1, on_failure="halt")
    result = run_rollout(HOSTS, per_host, policy, stopping=stopping)
    assert returned.is_set()  # the running host was waited for
    assert result.interrupted and stopping.is_set()
    assert [o.state for o in result.outcomes] == ["interrupted"] + ["not_started"] * 3
    assert result.outcomes[0].error == "Interrupted: told to stop"
    assert result.changed_hosts() == ["web-1"]


@pytest.mark.usefixtures("sigint_raises")
def test_a_second_signal_while_waiting_for_running_hosts_goes_to_the_caller() -> None:
    stopping, release = threading.Event(), threading.Event()

    def per_host(host: str) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        stopping.wait(BOUND)
        os.kill(os.getpid(), signal.SIGINT)  # the operator insists
        release.wait(BOUND)

    policy = RolloutPolicy(max_parallel=1, on_failure="halt")
    try:
        with pytest.raises(Interrupted, match="SIGINT"):
            run_rollout(HOSTS, per_host, policy, stopping=stopping)
    finally:
        release.set()


def test_under_the_process_signal_guard_a_second_signal_is_answered_not_abandoning() -> None:
    """As a pipeline step would run it: the first SIGTERM stops the rollout, the next one
    only gets a warning while the running host ends."""
    stopping, warned = threading.Event(), list[str]()

    def per_host(host: str) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        if stopping.wait(BOUND):
            os.kill(os.getpid(), signal.SIGTERM)
            raise Interrupted("told to stop")

    policy = RolloutPolicy(max_parallel=1, on_failure="halt")
    with INTERRUPTS.installed() as guard, guard.raising():
        guard.warn = warned.append
        result = run_rollout(HOSTS, per_host, policy, stopping=stopping)
    assert result.interrupted
    assert [o.state for o in result.outcomes] == ["interrupted"] + ["not_started"] * 3
    assert len(warned) == 1 and warned[0].startswith("SIGTERM: stopping cleanly first")
