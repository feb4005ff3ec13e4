"""``hosts.forward.reach``: the one rewrite of a host's loopback URL to a forwarded local port."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from deploytools.hosts.forward import reach
from deploytools.testing import MemoryHost


class Forwarding(MemoryHost):
    """A remote host: each forwarded port comes back as another local one."""

    def __init__(self) -> None:
        super().__init__("web-2")
        self.forwarded: list[int] = []

    @contextlib.contextmanager
    def forward(self, remote_port: int) -> Iterator[int]:  # type: ignore[override]
        self.forwarded.append(remote_port)
        yield 40000 + len(self.forwarded)


@pytest.mark.parametrize(
    ("url", "reached", "port"),
    [
        ("http://127.0.0.1:8000/health", "http://127.0.0.1:40001/health", 8000),
        ("http://localhost/health?x=1", "http://127.0.0.1:40001/health?x=1", 80),
        ("redis://:pw%40x@127.0.0.1/0", "redis://:pw%40x@127.0.0.1:40001/0", 6379),
        ("amqp://u:p@[::1]:5673//", "amqp://u:p@127.0.0.1:40001//", 5673),
    ],
)
def test_a_loopback_url_on_the_host_goes_through_a_forwarded_port(
    url: str, reached: str, port: int
) -> None:
    host = Forwarding()
    with contextlib.ExitStack() as stack:
        assert reach(stack, host, url) == reached
    assert host.forwarded == [port]


@pytest.mark.parametrize(
    "url", ["http://db.internal:8000/", "filesystem://", "memcache://127.0.0.1/"]
)
def test_what_is_not_on_the_hosts_loopback_or_has_no_port_is_left_alone(url: str) -> None:
    host = Forwarding()
    with contextlib.ExitStack() as stack:
        assert reach(stack, host, url) == url
    assert host.forwarded == []


def test_this_machine_keeps_its_urls() -> None:
    with contextlib.ExitStack() as stack:
        assert reach(stack, MemoryHost(), "http://127.0.0.1:8000/") == "http://127.0.0.1:8000/"
