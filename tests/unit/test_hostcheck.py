"""The checks of one host, through an in-memory host: what each says when it passes or
fails, and what is not run once the host cannot be asked anything more."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from deploytools.config import EnvironmentSettings, HostSettings
from deploytools.errors import CommandError, DeployFailure, HostKeyError, OperatorError
from deploytools.hostcheck import HostChecks, check_host, check_hosts, check_names
from deploytools.testing import MemoryHost

DF = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/x 9 9 {kb} 9% /\n"
HOST = HostSettings(name="web-1", address="10.0.0.7", root="/srv/app", roles=["web", "worker"])


def environment(runtime: str = "process", **keys: Any) -> EnvironmentSettings:
    extra = {"compose": {"project_name": "p"}} if runtime == "compose" else {}
    return EnvironmentSettings(
        name="prod", env_file="e", env_example="x", runtime=runtime, hosts=[HOST],
        **extra, **keys,
    )  # fmt: skip


def answers(**by_program: tuple[int, str]) -> Any:
    """A responder: the answer for each program (``docker_compose`` for ``docker compose``)."""
    defaults = {"true": (0, ""), "df": (0, DF.format(kb=10 * 1024 * 1024)), "date": (0, "1000.5")}
    made = (0, "/srv/app/.deploytools-check.Ab3dE5gH\n")
    table = {**defaults, "python3": (0, "Python 3.11.2"), "mktemp": made, **by_program}

    def respond(argv: list[str]) -> tuple[int, str]:
        key = "docker_compose" if argv[:2] == ["docker", "compose"] else argv[0]
        return table.get(key, (0, ""))

    return respond


def ticking(*times: float) -> Any:
    clock: Iterator[float] = iter(times)
    return lambda: next(clock)


def run(host: MemoryHost, settings: EnvironmentSettings | None = None, **kw: Any) -> HostChecks:
    kw.setdefault("clock", ticking(1000.0, 1001.0))
    return check_host(settings or environment(), HOST, host, **kw)


def said(report: HostChecks) -> dict[str, tuple[bool | None, str]]:
    return {c.name: (c.ok, c.detail) for c in report.checks}


def test_a_process_host_that_passes_everything_and_leaves_nothing() -> None:
    host = MemoryHost("web-1", answers())
    report = run(host)
    assert report.ok and report.roles == ("web", "worker")
    assert said(report) == {
        "reachable": (True, "10.0.0.7:22"),
        "host key": (True, "known"),
        "login": (True, "as deploy"),
        "python": (True, "python3: Python 3.11.2"),
        "disk": (True, "10,240 MB free"),
        "clock": (True, "+0.0s (±0.5s)"),
        "write": (True, "writable"),
    }
    assert host.commands[-2:] == [
        ["mktemp", "-p", "/srv/app", ".deploytools-check.XXXXXXXX"],
        ["rm", "-f", "--", "/srv/app/.deploytools-check.Ab3dE5gH"],
    ]
    assert [a[0] for a in host.commands] == ["true", "python3", "df", "date", "mktemp", "rm"]
    assert list(said(report)) == check_names(environment())


@pytest.mark.parametrize(
    ("date", "times", "verdict"),
    [
        ("1000.5", (1000.0, 1001.0), (True, "+0.0s (±0.5s)")),
        ("1006.0", (1000.0, 1001.0), (True, "+5.0s (±0.5s)")),  # at the limit
        ("1006.1", (1000.0, 1001.0), (False, "5.1s ahead of this machine (at most 5s)")),
        ("994.0", (1000.0, 1001.0), (False, "6.0s behind this machine (at most 5s)")),
        ("1000.N", (1000.0, 1001.0), (True, "+0.0s (±0.5s)")),  # no %N
        ("Tue Dec 1", (1000.0, 1001.0), (False, "cannot read the host's time from `date`: "
                                            "'Tue Dec 1'")),
    ],
)  # fmt: skip
def test_clock_skew_counts_from_the_round_trip(
    date: str, times: tuple[float, float], verdict: tuple[bool, str]
) -> None:
    report = run(MemoryHost("web-1", answers(date=(0, date))), clock=ticking(*times))
    assert said(report)["clock"] == verdict
    assert said(report)["write"][0] is True  # a failed check does not stop the others


def test_compose_checks_the_engine_and_compose_v2() -> None:
    good = answers(docker=(0, "27.5.1"), docker_compose=(0, "2.40.3"))
    report = run(MemoryHost("web-1", good), environment("compose"))
    assert (said(report)["docker"], said(report)["compose"]) == (
        (True, "engine 27.5.1"), (True, "v2.40.3"),
    )  # fmt: skip
    missing = run(MemoryHost("web-1", answers(docker=(127, "sh: docker: not found"))),
                  environment("compose"))  # fmt: skip
    assert said(missing)["docker"] == (False, "the docker CLI is not installed")
    down = answers(docker=(1, "Cannot connect to the Docker daemon"), docker_compose=(0, "v1.29"))
    report = run(MemoryHost("web-1", down), environment("compose"))
    assert said(report)["docker"] == (
        False, "the Docker engine does not answer: Cannot connect to the Docker daemon",
    )  # fmt: skip
    assert said(report)["compose"] == (False, "docker compose v2 is not available: v1.29")


def test_too_little_disk_space_names_what_is_needed() -> None:
    host = MemoryHost("web-1", answers(df=(0, DF.format(kb=50 * 1024))))
    assert said(run(host))["disk"] == (False, "50 MB free on /srv/app, 100 MB needed")
    compose = run(MemoryHost("web-1", answers(df=(0, DF.format(kb=200 * 1024)))),
                  environment("compose"))  # fmt: skip
    assert said(compose)["disk"] == (False, "200 MB free on /srv/app, 256 MB needed")


class Refusing(MemoryHost):
    def __init__(self, error: Exception) -> None:
        super().__init__("web-1", answers())
        self.error = error

    def run(self, argv: Any, **kw: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (DeployFailure("cannot connect to web-1: connection refused"),
         {"reachable": False}),
        (HostKeyError("host key of web-1 is not in kh"), {"reachable": True, "host key": False}),
        (OperatorError("SSH login to web-1 refused"),
         {"reachable": True, "host key": True, "login": False}),
        (CommandError(["true"], None, "", "web-1"),  # logged in, then no answer in time
         {"reachable": True, "host key": True, "login": False}),
    ],
)  # fmt: skip
def test_what_a_failed_connection_says_and_leaves_unchecked(
    error: Exception, expected: dict[str, bool]
) -> None:
    report = run(Refusing(error))
    verdicts = {c.name: c.ok for c in report.checks}
    assert verdicts == {n: expected.get(n) for n in check_names(environment())}
    assert [c.name for c in report.checks] == check_names(environment())
    assert report.failed()[0].detail == error.args[0]
    assert all(c.detail == "not checked" for c in report.checks if c.ok is None)


def test_a_root_that_is_not_writable() -> None:
    failed = (1, "mktemp: failed to create file via template '/srv/app/.X': Read-only file system")
    report = run(MemoryHost("web-1", answers(mktemp=failed)))
    refused = "cannot create a file in /srv/app: Read-only file system"
    assert said(report)["write"] == (False, refused)
    assert not report.ok and [c.name for c in report.failed()] == ["write"]


def test_hosts_are_checked_at_most_max_parallel_at_once_in_the_order_given() -> None:
    names = [f"h{i}" for i in range(6)]
    hosts = [HostSettings(name=n, address=f"{n}.internal", primary=n == "h0") for n in names]
    settings = EnvironmentSettings(
        name="prod", env_file="e", env_example="x", runtime="process", hosts=hosts,
        rollout={"max_parallel": 2},
    )  # fmt: skip
    lock, now, most = threading.Lock(), [0], [0]
    pairs = threading.Barrier(2, timeout=10)  # two at once, or it breaks

    def respond(argv: list[str]) -> tuple[int, str]:
        if argv == ["true"]:  # the first command of each host: wait for the other worker
            with lock:
                now[0] += 1
                most[0] = max(most[0], now[0])
            pairs.wait()
            with lock:
                now[0] -= 1
        return answers()(argv)

    @contextmanager
    def connect(conf: HostSettings) -> Iterator[MemoryHost]:
        yield MemoryHost(conf.name, respond)

    reports = check_hosts(settings, connect=connect, clock=lambda: 1000.5)
    assert [r.host for r in reports] == names and all(r.ok for r in reports)
    assert most[0] == 2
