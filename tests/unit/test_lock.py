import os
import socket

import pytest

from deploytools.errors import DeployFailure, OperatorError
from deploytools.lock import DeployLock, Holder
from tests.support.memhost import MemoryHost


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def make_lock(host: MemoryHost, clock: Clock, ttl: float = 3600) -> DeployLock:
    return DeployLock(host, "/state/prod", ttl, env="prod", clock=clock, sleep=clock.sleep)


def holder(
    pid: int = os.getpid(), since: float = 1_000_000.0, machine: str | None = None
) -> Holder:
    return Holder("alice", machine or socket.gethostname(), pid, since, "invoke deploy", "r1")


def test_second_holder_is_refused_with_the_first_ones_details() -> None:
    host, clock = MemoryHost(), Clock()
    make_lock(host, clock).acquire(holder())
    with pytest.raises(DeployFailure) as caught:
        make_lock(host, clock).acquire(holder())
    assert "alice@" in caught.value.problem
    assert f"pid {os.getpid()}" in caught.value.problem
    assert "invoke deploy" in caught.value.problem and "release r1" in caught.value.problem
    assert "stale" not in caught.value.problem
    assert caught.value.fix == (
        "wait for it (--lock-wait SECONDS), or if it is stale: "
        "invoke lock.release --force --env prod"
    )


def test_release_frees_the_lock_and_is_idempotent() -> None:
    host, clock = MemoryHost(), Clock()
    lock = make_lock(host, clock)
    lock.acquire(holder())
    lock.release()
    lock.release()
    assert not lock.locked()
    make_lock(host, clock).acquire(holder())


def test_waiting_gives_up_after_the_wait_and_polls_meanwhile() -> None:
    host, clock = MemoryHost(), Clock()
    make_lock(host, clock).acquire(holder())
    with pytest.raises(DeployFailure):
        make_lock(host, clock).acquire(holder(), wait=2.0)
    assert clock.now >= 1_000_002.0


def test_a_dead_process_on_this_machine_makes_the_lock_stale() -> None:
    host, clock = MemoryHost(), Clock()
    dead_pid = 2**22 + 12345
    make_lock(host, clock).acquire(holder(pid=dead_pid))
    lock = make_lock(host, clock)
    assert f"process {dead_pid}" in (lock.stale_reason(lock.holder()) or "")
    with pytest.raises(DeployFailure, match="looks stale"):
        lock.acquire(holder())


def test_an_old_lock_is_stale_even_on_another_machine() -> None:
    host, clock = MemoryHost(), Clock()
    make_lock(host, clock).acquire(holder(machine="elsewhere"))
    clock.now += 7200
    lock = make_lock(host, clock)
    assert "time-to-live" in (lock.status()["stale"] or "")


def test_force_release_of_a_missing_lock_is_an_operator_error() -> None:
    with pytest.raises(OperatorError):
        make_lock(MemoryHost(), Clock()).force_release()
