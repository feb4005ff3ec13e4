"""A loopback TCP server that accepts every connection and never sends a byte.

What a hung broker looks like from outside (a stopped-but-listening process, a proxy whose
backend is gone, a firewall that lets SYNs through): a TCP connect succeeds, every read waits.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class BlackHole:
    """``hole.port`` accepts connections and holds them open, silent (see ``black_hole``)."""

    host = "127.0.0.1"

    def __init__(self, listener: socket.socket) -> None:
        self._listener = listener
        self.port: int = listener.getsockname()[1]
        self.held: list[socket.socket] = []  # every connection that came in, never answered

    def url(self, db: int = 0, password: str = "") -> str:
        auth = f":{password}@" if password else ""
        return f"redis://{auth}{self.host}:{self.port}/{db}"

    def accept(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(conn)


@contextlib.contextmanager
def black_hole() -> Iterator[BlackHole]:
    """A black hole on a free loopback port; closed, with every connection it held, on exit."""
    with socket.create_server((BlackHole.host, 0), backlog=64) as listener:
        listener.settimeout(0.2)
        hole = BlackHole(listener)
        stop = threading.Event()
        acceptor = threading.Thread(target=hole.accept, args=(stop,), daemon=True)
        acceptor.start()
        try:
            yield hole
        finally:
            stop.set()
            acceptor.join(5.0)
            for conn in hole.held:
                conn.close()
