"""A throwaway redis-server on a free loopback port, without persistence."""

from __future__ import annotations

import signal
import socket

from tests.support import parts, procs
from tests.support.require import require


class RedisServer(procs.TempServer):
    """``with RedisServer() as redis:`` a running server; stopped and deleted on exit."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        binary = parts.program("redis-server")
        require(binary is not None, "redis-server", parts.PROVISION)
        assert binary is not None
        self._binary = binary
        self.port = procs.free_port()
        super().__init__("deploytools-redis-")
        self._log = self._dir / "redis.log"

    def start(self) -> None:
        """Start (or restart after ``stop``) on the same port; the data starts empty."""
        if self._running():
            return
        argv = [
            self._binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self._dir),
        ]  # fmt: skip
        self._proc = procs.start(argv, self._log, cwd=self._dir)
        procs.wait_until(self._pong, f"redis-server on port {self.port}", self._proc, self._log)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): its port still accepts connections, nothing answers."""
        if self._running():
            assert self._proc is not None
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT); harmless on a running one."""
        if self._running():
            assert self._proc is not None
            self._proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.resume()  # a frozen server would only act on SIGTERM after the kill timeout
        super().stop()

    def _pong(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"
