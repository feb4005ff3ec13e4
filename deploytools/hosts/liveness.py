"""Is the SSH peer still answering? One watchdog thread per connection asks it regularly.

A TCP connection to a host that froze (a suspended VM, a stopped sshd, a firewall that drops
packets) stays "open": every read on it waits, and paramiko's reads have no timeout of their
own. Output cannot tell a frozen peer from a long silent command (pg_dump of a big database),
so the watchdog asks the peer itself: every ``interval`` seconds it sends an SSH global request
that needs a reply (``keepalive@openssh.com``, which OpenSSH answers at once, if only with
"unknown request"). A peer that does not reply within ``answer`` seconds is declared stalled
and its transport closed, which wakes every command, SFTP call and tunnel waiting on it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

KEEPALIVE_REQUEST = "keepalive@openssh.com"
INTERVAL = 15.0  # seconds between probes, at most


@dataclass(frozen=True)
class Bounds:
    """How often to ask and how long to wait for the answer; a stall ends within ``limit``."""

    interval: float
    answer: float

    @classmethod
    def from_timeouts(cls, command: float, connect: float) -> Bounds:
        """Within ``timeouts.command`` in all: a stalled connection ends no later than a
        command that hangs; a reply may take as long as a connection may (``connect``)."""
        return cls(interval=min(INTERVAL, command / 2), answer=min(connect, command / 2))

    @property
    def limit(self) -> float:
        return self.interval + self.answer


class Watchdog:
    """Probes one transport until it closes or ``stop`` is called; closes it on a stall.

    ``stalled`` then says why, for the error that the waiting operations raise.
    """

    def __init__(self, transport: Any, bounds: Bounds, name: str) -> None:
        self.transport = transport
        self.bounds = bounds
        self.stalled: str | None = None
        self.probes = 0  # answered ones
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"ssh-watchdog-{name}")
        self._thread.daemon = True
        self._thread.start()

    def alive(self) -> bool:
        return self.stalled is None and bool(self.transport.is_active())

    def fail(self, reason: str) -> None:
        """Declare the connection stalled (first reason wins) and close it."""
        if self.stalled is None:
            self.stalled = reason
        self._stop.set()
        self.transport.close()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.bounds.interval) and self.transport.is_active():
            if probe(self.transport, self.bounds.answer):
                self.probes += 1
            elif self.transport.is_active() and not self._stop.is_set():
                self.fail(f"no answer to a keepalive within {self.bounds.answer:g}s")


def probe(transport: Any, timeout: float) -> bool:
    """True if the peer answered a global request within ``timeout`` (success or refusal).

    paramiko's ``global_request`` waits without a bound, so it runs in a helper thread; the
    helper ends when the answer comes or when the transport is closed.
    """
    answered = threading.Event()

    def ask() -> None:
        import paramiko

        try:
            transport.global_request(KEEPALIVE_REQUEST, wait=True)
        except (paramiko.SSHException, OSError, EOFError):
            return  # the transport is going away: not an answer
        if transport.is_active():
            answered.set()

    helper = threading.Thread(target=ask, name="ssh-keepalive")
    helper.daemon = True
    helper.start()
    return answered.wait(timeout)
