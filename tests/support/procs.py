"""Start, wait for and stop the server processes that fixtures own; every wait is bounded."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self


class ServerError(RuntimeError):
    """A test server did not come up; the message carries the tail of its log."""


def free_port() -> int:
    """A loopback port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_port() -> int:
    """A free loopback port below the kernel's ephemeral range, for an app service that deploys
    restart: ``free_port``'s come from that range, and between the old process and the new one
    an outgoing connection (SSH, tunnels, probes: hundreds per deploy) may take the port as its
    source port, so that the new process cannot bind it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        port = random.randrange(20000, max(low, 20001))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: another
            return port
    return free_port()


def start(argv: Sequence[str], log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a server in the foreground (no daemonizing), its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=cwd
        )


def wait_until(
    ready: Callable[[], bool],
    what: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 30.0,
) -> None:
    """Poll ``ready`` until true; give up (with the log tail) on timeout or if ``proc`` died."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while not ready():
        if proc.poll() is not None:
            raise ServerError(f"{what} exited with {proc.returncode}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise ServerError(f"{what} not ready after {timeout:.0f}s:\n{tail(log)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Ask ``proc`` to stop with ``sig``; kill it if it is still there after ``timeout``."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def accepts(port: int) -> bool:
    """True if something listens on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def tail(log: Path, lines: int = 20) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class TempServer:
    """A server living in its own temp directory: ``with`` starts it, then stops and deletes.

    Subclasses may set ``_stop_signal``/``_stop_timeout``, and implement ``_prepare`` (one-time
    set-up) and ``start`` (called again after ``stop`` when a test brings the server back).
    """

    _stop_signal: int = signal.SIGTERM
    _stop_timeout: float = 15.0

    def __init__(self, prefix: str) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix=prefix))
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        try:
            self._prepare()
            self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            self._release()
            shutil.rmtree(self._dir, ignore_errors=True)

    def _prepare(self) -> None:
        """One-time set-up before the first ``start``."""

    def _release(self) -> None:
        """Undo what ``_prepare`` set up outside the directory's files (a mount), once stopped."""

    def start(self) -> None:
        raise NotImplementedError

    def _running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Stop the server; its directory stays so that ``start`` can bring it back."""
        if self._proc is not None:
            stop(self._proc, self._stop_signal, self._stop_timeout)
