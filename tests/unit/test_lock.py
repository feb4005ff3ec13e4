import json
import os
import socket
from dataclasses import asdict

import pytest

from deploytools.errors import DeployFailure, OperatorError
from deploytools.site.lock import HOLDER_GRACE, DeployLock, Holder
from deploytools.testing import Clock, MemoryHost


def make_lock(host: MemoryHost, clock: Clock, ttl: float = 3600) -> DeployLock:
    return DeployLock(host, "/state/prod", ttl, env="prod", clock=clock, sleep=clock.sleep)


def holder(
    pid: int = os.getpid(), since: float = 1_000_000.0, machine: str | None = None
) -> Holder:
    return Holder("alice", machine or socket.gethostname(), pid, since, "invoke deploy", "r1")


def test_second_holder_is_refused_with_the_first_ones_details() -> None:
    host, clock = MemoryHost(), Clock(1_000_000.0)
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
    host, clock = MemoryHost(), Clock(1_000_000.0)
    lock = make_lock(host, clock)
    lock.acquire(holder())
    lock.release()
    lock.release()
    assert not lock.locked()
    make_lock(host, clock).acquire(holder())


def test_waiting_gives_up_after_the_wait_and_polls_meanwhile() -> None:
    host, clock = MemoryHost(), Clock(1_000_000.0)
    make_lock(host, clock).acquire(holder())
    with pytest.raises(DeployFailure):
        make_lock(host, clock).acquire(holder(), wait=2.0)
    assert clock.now >= 1_000_002.0


def test_a_dead_process_on_this_machine_makes_the_lock_stale() -> None:
    host, clock = MemoryHost(), Clock(1_000_000.0)
    dead_pid = 2**22 + 12345
    make_lock(host, clock).acquire(holder(pid=dead_pid))
    lock = make_lock(host, clock)
    assert f"process {dead_pid}" in (lock.stale_reason(lock.holder()) or "")
    with pytest.raises(DeployFailure, match="looks stale"):
        lock.acquire(holder())


def test_an_old_lock_is_stale_even_on_another_machine() -> None:
    host, clock = MemoryHost(), Clock(1_000_000.0)
    make_lock(host, clock).acquire(holder(machine="elsewhere"))
    clock.now += 7200
    lock = make_lock(host, clock)
    assert "time-to-live" in (lock.status()["stale"] or "")


def test_force_release_of_a_missing_lock_is_an_operator_error() -> None:
    with pytest.raises(OperatorError):
        make_lock(MemoryHost(), Clock(1_000_000.0)).force_release()


def test_a_lock_just_taken_is_named_by_its_holder_not_called_stale() -> None:
    """The winner creates the directory, then writes holder.json: a loser reading between the
    two must not report a live lock as stale (and suggest lock.release --force)."""
    host, clock = MemoryHost(), Clock(1_000_000.0)
    winner = make_lock(host, clock)
    host.makedirs(winner.path)  # mkdir done, holder.json not written yet

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if not host.exists(f"{winner.path}/holder.json"):
            host.write_file(f"{winner.path}/holder.json", json.dumps(asdict(holder())).encode())

    loser = DeployLock(host, "/state/prod", 3600, env="prod", clock=clock, sleep=sleep)
    with pytest.raises(DeployFailure) as caught:
        loser.acquire(holder())
    assert "is held by alice@" in caught.value.problem
    assert "stale" not in caught.value.problem


def test_a_lock_without_holder_json_is_stale_once_its_writer_had_time() -> None:
    host, clock = MemoryHost(), Clock(1_000_000.0)
    lock = make_lock(host, clock)
    host.makedirs(lock.path)  # a run that died between mkdir and writing holder.json
    with pytest.raises(DeployFailure, match=r"looks stale: it has no readable holder\.json"):
        lock.acquire(holder())
    assert clock.now >= 1_000_000.0 + HOLDER_GRACE


class FailingWrites(MemoryHost):
    """holder.json cannot be written: the connection went away, or a signal came."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        raise self.error


@pytest.mark.parametrize("error", [OSError("connection lost"), KeyboardInterrupt("SIGTERM")])
def test_a_lock_taken_half_way_is_not_left_behind(error: BaseException) -> None:
    host, clock = FailingWrites(error), Clock(1_000_000.0)
    lock = make_lock(host, clock)
    with pytest.raises(type(error)):
        lock.acquire(holder())
    assert not lock.locked() and not lock.held


def test_a_signal_as_the_lock_directory_is_made_lands_after_it_is_noted_as_held() -> None:
    import signal

    from deploytools.interrupts import INTERRUPTS

    class SignalledAsItMakesIt(MemoryHost):
        def create_dir(self, path: str) -> bool:
            made = super().create_dir(path)
            os.kill(os.getpid(), signal.SIGTERM)  # handled before create_dir returns
            return made

    host, clock = SignalledAsItMakesIt(), Clock(1_000_000.0)
    lock = make_lock(host, clock)
    with INTERRUPTS.installed(), INTERRUPTS.raising(), pytest.raises(KeyboardInterrupt):
        lock.acquire(holder())
    assert not lock.locked() and not lock.held  # taken, noted, then released by acquire
