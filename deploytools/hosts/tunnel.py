"""Local port forwarding over an SSH transport, for ``SshHost.forward``.

Not Fabric's ``forward_local``: its listener binds in a thread after the block has started
(a first connection can be refused) and it stops accepting for good once one channel fails to
open, so a health probe made before the service listens would leave later probes hanging.
Here the listener is bound before the port is handed out, and a failed channel only closes
the one connection that asked for it.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from deploytools.errors import DeployToolsError

POLL = 0.2  # seconds between checks of the stop flag
CHUNK = 65536


@contextlib.contextmanager
def forward_local(
    open_channel: Callable[[tuple[str, int], tuple[str, int]], Any],
    remote_port: int,
    remote_host: str = "127.0.0.1",
) -> Iterator[int]:
    """Yield a loopback port whose connections reach ``remote_host:remote_port`` remotely.

    ``open_channel(destination, origin)`` opens a direct-tcpip channel for each connection or
    raises ``DeployToolsError`` (the host bounds the wait, and connects again if need be).
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(POLL)
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def serve(client: socket.socket, origin: tuple[str, int]) -> None:
        try:
            channel = open_channel((remote_host, remote_port), origin)
        except DeployToolsError:
            client.close()  # nothing listens there (yet), or no connection: refuse this one
            return
        with client, channel:
            _pump(client, channel, stop)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, origin = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=serve, args=(client, origin), daemon=True)
            worker.start()
            workers.append(worker)

    acceptor = threading.Thread(target=accept, name=f"forward-{remote_port}", daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        acceptor.join(POLL * 10)
        listener.close()
        for worker in workers:
            worker.join(POLL * 10)


def _pump(client: socket.socket, channel: Any, stop: threading.Event) -> None:
    """Copy both ways until both sides have finished sending (or the tunnel closes)."""
    peers: dict[Any, Any] = {client: channel, channel: client}
    try:
        while peers and not stop.is_set():
            readable, _, _ = select.select(list(peers), [], [], POLL)
            for source in readable:
                data = source.recv(CHUNK)
                target = peers[source]
                if data:
                    target.sendall(data)
                    continue
                del peers[source]  # EOF from source: pass the half-close on
                if isinstance(target, socket.socket):
                    target.shutdown(socket.SHUT_WR)
                else:
                    target.shutdown_write()
    except OSError:
        return  # either side went away: closing both is all that is left to do
