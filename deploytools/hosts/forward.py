"""One way to reach a service that listens on a host's loopback interface: a URL that names
127.0.0.1 on ``host`` is rewritten to a local port forwarded to it (the same URL when ``host``
is this machine, whose ``forward`` keeps the port). Health probes and the Celery broker both
go through here, so the control machine's 127.0.0.1 is never taken for the host's."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from deploytools.hosts.base import Host

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_PORTS: Mapping[str, int] = {
    "http": 80,
    "https": 443,
    "redis": 6379,
    "rediss": 6379,
    "amqp": 5672,
    "amqps": 5671,
    "pyamqp": 5672,
}


def reach(stack: contextlib.ExitStack, host: Host, url: str) -> str:
    """``url`` as this machine reaches it while ``stack`` is open; a URL that is not on the
    host's loopback, or has no port to forward (a scheme without a default), is left as is.
    The user and password stay in the URL, the host part becomes the forwarded port."""
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    if parts.hostname not in LOOPBACK or port is None:
        return url
    local = stack.enter_context(host.forward(port))
    if local == port:
        return url
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (f"{userinfo}@" if userinfo else "") + f"127.0.0.1:{local}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
