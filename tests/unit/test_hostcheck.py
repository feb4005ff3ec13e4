"""The checks of one host, through an in-memory host: what each says when it passes or
fails, and what is not run once the host cannot be asked anything more."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from deploytools.commands import hostcheck as probe
from deploytools.config import EnvironmentSettings, HostSettings
from deploytools.errors import CommandError, DeployFailure, HostKeyError, OperatorError
from deploytools.hostcheck import Check, HostChecks, check_host, check_hosts, check_names
from deploytools.testing import MemoryHost, Responder

DF = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/x 9 9 {kb} 9% /\n"
HOST = HostSettings(name="web-1", address="10.0.0.7", root="/srv/app", roles=["web", "worker"])


def environment(runtime: str = "process", **keys: Any) -> EnvironmentSettings:
    extra = {"compose": {"project_name": "p"}} if runtime == "compose" else {}
    return EnvironmentSettings(
        name="prod", env_file="e", env_example="x", runtime=runtime, hosts=[HOST],
        **extra, **keys,
    )  # fmt: skip


def probe_report(parts: dict[str, tuple[int, str]]) -> str:
    """What the probe prints for these parts (name: exit code, output), in its format."""
    lines = []
    for name, (code, out) in parts.items():
        lines += [f"={name} {code}", *(f"|{line}" for line in out.splitlines() or [""])]
    return "\n".join(lines) + "\n"


def answers(**by_part: tuple[int, str]) -> Responder:
    """A responder: the login's ``true``, then the probe's report of each part it was asked
    for (``date``: both of the host's times), the given answers over the defaults."""
    made = (0, "/srv/app/.deploytools-check.Ab3dE5gH")
    table = {
        "date": (0, "1000.5"), "docker": (0, "27.5.1"), "compose": (0, "2.40.3"),
        "python": (0, "Python 3.11.2"), "df": (0, DF.format(kb=10 * 1024 * 1024)),
        "mktemp": made, "rm": (0, ""), **by_part,
    }  # fmt: skip

    def respond(argv: list[str]) -> tuple[int, str]:
        if argv[:2] != ["sh", "-c"]:
            return (0, "") if argv == ["true"] else (1, f"unexpected {argv}")
        engine = {"docker": ["docker", "compose"], "python": ["python"]}.get(argv[6], [])
        asked = ["date", *engine, "df", "mktemp"] + (["rm"] if table["mktemp"][0] == 0 else [])
        parts = {n.replace("date", "start"): table[n] for n in asked}
        return 0, probe_report({**parts, "end": table["date"]})

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
    # Two remote commands: the login, then one probe (it makes its temp file and removes it).
    assert host.commands == [["true"], ["sh", "-c", probe.SCRIPT, "sh", "30", "/srv/app",
                                        "python", "python3"]]  # fmt: skip
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
    good = answers(docker=(0, "27.5.1"), compose=(0, "2.40.3"))
    report = run(MemoryHost("web-1", good), environment("compose"))
    assert (said(report)["docker"], said(report)["compose"]) == (
        (True, "engine 27.5.1"), (True, "v2.40.3"),
    )  # fmt: skip
    missing = run(MemoryHost("web-1", answers(docker=(127, "sh: docker: not found"))),
                  environment("compose"))  # fmt: skip
    assert said(missing)["docker"] == (False, "the docker CLI is not installed")
    down = answers(docker=(1, "Cannot connect to the Docker daemon"), compose=(0, "v1.29"))
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


@pytest.mark.parametrize("runtime", ["process", "compose"])
def test_two_remote_commands_per_host_whatever_the_runtime(runtime: str) -> None:
    """The login, then one probe: each remote command is an sshd fork, a shell and a round
    trip, which a check of many hosts pays per host."""
    host = MemoryHost("web-1", answers())
    report = run(host, environment(runtime))
    assert report.ok, report.failed()
    engine = ["docker", ""] if runtime == "compose" else ["python", "python3"]
    assert host.commands == [["true"], ["sh", "-c", probe.SCRIPT, "sh", "30", "/srv/app", *engine]]


PROBE_FAILURES = [
    ("compose", {"docker": (124, "")}, "docker", "`docker version` gave no answer within 30s"),
    ("compose", {"docker": (127, "docker: command not found")}, "docker",
     "the docker CLI is not installed"),
    ("compose", {"docker": (1, "Cannot connect to the Docker daemon at unix:///x.sock")},
     "docker", "the Docker engine does not answer: Cannot connect to the Docker daemon at "
     "unix:///x.sock"),
    ("compose", {"compose": (0, "1.29.2")}, "compose",
     "docker compose v2 is not available: 1.29.2"),
    ("compose", {"compose": (1, "docker: 'compose' is not a docker command.")}, "compose",
     "docker compose v2 is not available: docker: 'compose' is not a docker command."),
    ("compose", {"compose": (124, "")}, "compose", "`docker compose` gave no answer within 30s"),
    ("process", {"python": (127, "python3: command not found")}, "python",
     "python3 does not run: python3: command not found"),
    ("process", {"python": (124, "")}, "python", "`python3 --version` gave no answer within 30s"),
    ("process", {"df": (0, DF.format(kb=99 * 1024))}, "disk",
     "99 MB free on /srv/app, 100 MB needed"),
    ("process", {"df": (1, "df: /srv/app: No such file or directory")}, "disk",
     "cannot tell the free space of /srv/app (does it exist?)"),
    ("process", {"df": (124, "")}, "disk",
     "cannot tell the free space of /srv/app (does it exist?)"),
    ("process", {"date": (0, "Tue Dec  1 23:00:00 UTC 2026")}, "clock",
     "cannot read the host's time from `date`: 'Tue Dec  1 23:00:00 UTC 2026'"),
    ("process", {"date": (1, "date: invalid date")}, "clock", "`date` failed: date: invalid date"),
    ("process", {"date": (0, "1007.0")}, "clock", "6.0s ahead of this machine (at most 5s)"),
    ("process", {"mktemp": (1, "mktemp: failed to create file via template "
                            "'/srv/app/.deploytools-check.XXXXXXXX': Permission denied")},
     "write", "cannot create a file in /srv/app: Permission denied"),
    ("process", {"mktemp": (124, "")}, "write", "`mktemp -p` gave no answer within 30s"),
    ("process", {"rm": (1, "rm: cannot remove 'x': Operation not permitted")}, "write",
     "cannot remove /srv/app/.deploytools-check.Ab3dE5gH: rm: cannot remove 'x': Operation not "
     "permitted"),
]  # fmt: skip


@pytest.mark.parametrize(("runtime", "parts", "check", "message"), PROBE_FAILURES)
def test_each_part_of_the_probe_that_fails_fails_its_own_check(
    runtime: str, parts: dict[str, tuple[int, str]], check: str, message: str
) -> None:
    report = run(MemoryHost("web-1", answers(**parts)), environment(runtime))
    assert [(c.name, c.detail) for c in report.failed()] == [(check, message)]
    assert [c.name for c in report.checks] == check_names(environment(runtime))


def test_what_the_probe_itself_took_on_the_host_is_no_cover_for_skew() -> None:
    """The host says its time when the probe starts and when it ends: 3 s of a 4 s round trip
    were the probe's own, so the host's start fell within 1 s of this machine's send."""
    def ahead(start: str, end: str) -> Any:
        respond = answers(date=(0, start))
        return lambda argv: (respond(argv)[0], respond(argv)[1].replace(
            f"=end 0\n|{start}", f"=end 0\n|{end}"))  # fmt: skip

    slow = run(MemoryHost("web-1", ahead("1006.5", "1009.5")), clock=ticking(1000.0, 1004.0))
    assert said(slow)["clock"] == (False, "5.5s ahead of this machine (at most 5s)")
    fine = run(MemoryHost("web-1", ahead("1002.5", "1005.5")), clock=ticking(1000.0, 1004.0))
    assert said(fine)["clock"] == (True, "+1.5s (±0.5s)")


def test_a_configured_python_that_is_not_there_fails_and_the_rest_is_still_asked() -> None:
    host = MemoryHost("web-1", answers())
    report = run(host, environment(python="/opt/py/bin/python"))
    assert said(report)["python"] == (
        False, "python /opt/py/bin/python does not exist on web-1",
    )  # fmt: skip
    assert [c.name for c in report.failed()] == ["python"]
    assert host.commands[1][4:] == ["30", "/srv/app", "none", ""]


class LostAtTheProbe(MemoryHost):
    """Logs in, then the probe raises ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__("web-1", answers())
        self.error = error

    def run(self, argv: Any, **kw: Any) -> Any:
        if argv[:2] == ["sh", "-c"]:
            raise self.error
        return super().run(argv, **kw)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (CommandError(["sh", "-c", probe.SCRIPT], None, "", "web-1"),
         "the host gave no answer within 256s"),
        (DeployFailure("lost the connection to web-1"), "lost the connection to web-1"),
    ],
)  # fmt: skip
def test_a_probe_without_answer_fails_the_check_it_was_at_and_leaves_the_rest(
    error: Exception, message: str
) -> None:
    report = run(LostAtTheProbe(error))
    assert said(report)["python"] == (False, message)
    assert probe.SCRIPT.strip().splitlines()[0] not in message  # no script in a message
    unchecked = ["disk", "clock", "write"]
    assert {n: said(report)[n] for n in unchecked} == {n: (None, "not checked") for n in unchecked}


def test_a_part_the_report_does_not_name_is_a_failed_check() -> None:
    respond = answers()

    def cut(argv: list[str]) -> tuple[int, str]:
        code, out = respond(argv)
        return code, out.split("=mktemp")[0]  # the report stops before the write test

    report = run(MemoryHost("web-1", cut))
    assert report.failed() == [
        Check("write", False, "the host's probe said nothing of `mktemp -p`")
    ]


def test_the_report_keeps_each_part_apart_whatever_its_output() -> None:
    text = "=docker 0\n|=compose 0\n||x\n|\n=compose 1\n|v1\n=df x\n"
    assert probe.parse(text) == {
        "docker": probe.Part(0, "=compose 0\n|x\n"),
        "compose": probe.Part(1, "v1"),
        "df": probe.Part(-1, ""),
    }
