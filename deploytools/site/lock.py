"""The deploy lock: one change at a time per environment, and a record of who holds it.

The lock is a directory created atomically (``Host.create_dir``) with ``holder.json`` inside,
as Kamal does. A lock whose process is gone on the same machine, or older than its
time-to-live, is *reported* as stale; only ``lock.release --force`` removes someone else's lock.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deploytools.errors import DeployFailure, OperatorError
from deploytools.hosts.base import Host
from deploytools.interrupts import INTERRUPTS
from deploytools.platform import pid_alive

if TYPE_CHECKING:
    from deploytools.config import EnvironmentSettings

LOCK_DIR = "deploy.lock"
# Held by flag writers while they write the hosts' state files: not the deploy lock, which a
# deploy holds for minutes and a kill must not wait for.
FLAGS_LOCK = "flags.lock"
HOLDER_FILE = "holder.json"
POLL_SECONDS = 0.25
HOLDER_GRACE = 2.0  # how long a run that just created the lock may take to write holder.json


@dataclass(frozen=True)
class Holder:
    user: str
    machine: str
    pid: int
    since: float
    command: str
    release: str | None = None

    @classmethod
    def me(cls, command: str, release: str | None = None) -> Holder:
        return cls(
            getpass.getuser(), socket.gethostname(), os.getpid(), time.time(), command, release
        )

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        what = f"`{self.command}`" + (f" (release {self.release})" if self.release else "")
        return f"{self.user}@{self.machine} pid {self.pid} since {since}: {what}"


class LockHeld(DeployFailure):
    """Another run holds the lock."""


class DeployLock:
    def __init__(
        self,
        host: Host,
        state_dir: str,
        ttl: float,
        *,
        env: str,
        name: str = LOCK_DIR,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.host = host
        self.state_dir = state_dir
        self.path = f"{state_dir}/{name}"
        self.what = "deploy lock" if name == LOCK_DIR else f"lock {name}"
        self.ttl = ttl
        self.env = env  # named in the fix of a conflict
        self._clock = clock
        self._sleep = sleep
        self.held = False

    @classmethod
    def of(cls, settings: EnvironmentSettings, host: Host) -> DeployLock:
        """The lock of ``settings``' environment, on ``host`` (its primary host)."""
        from deploytools import targets

        state_dir = targets.state_dir(settings, host)
        return cls(host, state_dir, settings.timeouts.lock_ttl, env=settings.name)

    def acquire(self, holder: Holder, wait: float = 0.0) -> None:
        """Take the lock, or fail at once with the holder's details (after ``wait`` seconds).

        Every task that takes the lock has ``--lock-wait``, which the failure suggests. If
        taking it fails half-way (a signal, a lost connection), what was created is removed.
        """
        self.host.makedirs(self.state_dir)
        deadline = self._clock() + wait
        try:
            while not self._create():
                if self._clock() >= deadline:
                    raise self._conflict()
                self._sleep(POLL_SECONDS)
            data = json.dumps(asdict(holder), indent=2).encode()
            self.host.write_file(f"{self.path}/{HOLDER_FILE}", data, mode=0o600)
        except BaseException:
            self.release()  # a no-op unless this call created the lock
            raise

    def _conflict(self) -> LockHeld:
        current = self._written_holder()
        who = current.describe() if current else "an unknown holder (no holder.json)"
        stale = self.stale_reason(current)
        return LockHeld(
            f"the {self.what} of environment {self.env} ({self.host.name}:{self.path}) "
            f"is held by {who}" + (f" - it looks stale: {stale}" if stale else ""),
            "wait for it (--lock-wait SECONDS), or if it is stale: "
            f"invoke lock.release --force --env {self.env}",
        )

    def _create(self) -> bool:
        """Create the lock directory; once it exists it is ours to remove, even if a signal
        comes at that very moment (it then lands after ``held`` is set)."""
        with INTERRUPTS.critical():
            self.held = self.host.create_dir(self.path)
        return self.held

    def _written_holder(self) -> Holder | None:
        """The holder, giving a run that has just created the lock the moment it needs to write
        holder.json (a round trip over SSH): read too early, a live lock would look stale."""
        give_up = self._clock() + HOLDER_GRACE
        while (current := self.holder()) is None and self.locked() and self._clock() < give_up:
            self._sleep(POLL_SECONDS)
        return current

    def note_release(self, release: str) -> None:
        """Add the release being deployed to the holder record once it is known."""
        holder = self.holder()
        if self.held and holder is not None:
            data = json.dumps({**asdict(holder), "release": release}, indent=2).encode()
            self.host.write_file(f"{self.path}/{HOLDER_FILE}", data, mode=0o600)

    def release(self) -> None:
        """Release a lock we hold; a no-op otherwise (safe in ``finally`` and signal paths)."""
        if self.held:
            self.host.remove(self.path)
            self.held = False

    def force_release(self) -> Holder | None:
        current = self.holder()
        if not self.host.exists(self.path):
            raise OperatorError(
                f"no deploy lock at {self.host.name}:{self.path}", "nothing to release"
            )
        self.host.remove(self.path)
        return current

    def holder(self) -> Holder | None:
        path = f"{self.path}/{HOLDER_FILE}"
        if not self.host.exists(path):
            return None
        try:
            return Holder(**json.loads(self.host.read_file(path)))
        except (ValueError, TypeError):
            return None

    def locked(self) -> bool:
        return self.host.exists(self.path)

    def stale_reason(self, holder: Holder | None) -> str | None:
        """Why a lock looks abandoned, or None if it looks alive."""
        if holder is None:
            return "it has no readable holder.json" if self.locked() else None
        age = self._clock() - holder.since
        if age > self.ttl:
            return f"older than its time-to-live ({age:.0f} s > {self.ttl:.0f} s)"
        if holder.machine == socket.gethostname() and not pid_alive(holder.pid):
            return f"process {holder.pid} on {holder.machine} is gone"
        return None

    def status(self) -> dict[str, Any]:
        holder = self.holder()
        return {
            "locked": self.locked(),
            "path": f"{self.host.name}:{self.path}",
            "holder": asdict(holder) if holder else None,
            "stale": self.stale_reason(holder),
        }
