"""Can a run work on these hosts? Each one is asked, concurrently, before anything changes.

Per host, in order (a check whose ground an earlier one took away is not run): reachable
(TCP, SSH greeting), host key known, login, then the runtime (compose: the Docker engine and
compose v2; process: the app's interpreter), free space on the host's ``root``, clock skew
against this machine, and write access to ``root`` (a temp file made and removed: the only
trace a check leaves). Two remote commands per host: the login (``true``: its failure tells
unreachable, key and login refused apart), then one probe for all the others
(commands/hostcheck.py), whose parts are each bounded by ``timeouts.query``: a hung engine is
a failed check, not a lost host. ``hosts.check`` prints the result; ``check_host`` on a run's own
connections is what a deploy calls first, to change nothing anywhere when one fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass, field
from typing import Any

from deploytools.commands import fs
from deploytools.commands import hostcheck as probe
from deploytools.config import EnvironmentSettings, HostSettings
from deploytools.errors import (
    CommandError,
    DeployFailure,
    DeployToolsError,
    HostKeyError,
    OperatorError,
)
from deploytools.hosts.base import Host

MB = 1024 * 1024
Connector = Callable[[HostSettings], AbstractContextManager[Host]]
# The hosts' journals are merged by time, and lock ages and backup names are read against the
# controller's clock: a host that keeps time (NTP) is within milliseconds; 5 s means it does not.
MAX_CLOCK_SKEW = 5.0


@dataclass(frozen=True)
class Check:
    """One check of one host: ``ok`` None when it was not run (an earlier one failed)."""

    name: str
    ok: bool | None
    detail: str = ""


@dataclass(frozen=True)
class HostChecks:
    """Everything checked on one host, in the order it was checked."""

    host: str
    roles: tuple[str, ...]
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "roles": list(self.roles),
            "ok": self.ok,
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks},
        }


def check_names(settings: EnvironmentSettings) -> list[str]:
    """The checks of the environment's hosts, in order: the table's columns."""
    engine = ["docker", "compose"] if settings.runtime == "compose" else ["python"]
    return ["reachable", "host key", "login", *engine, "disk", "clock", "write"]


def check_hosts(
    settings: EnvironmentSettings,
    hosts: Sequence[HostSettings] | None = None,
    *,
    notice: Callable[[str], None] | None = None,
    max_skew: float = MAX_CLOCK_SKEW,
    clock: Callable[[], float] = time.time,
    connect: Connector | None = None,
) -> list[HostChecks]:
    """Check ``hosts`` (default: all of the environment's), at most ``rollout.max_parallel``
    at once; one result per host, in the order given. ``notice`` hears of host keys recorded
    by ``--trust-new-hosts``. Key files are the caller's to check first (``check_key_files``).
    ``connect`` opens a host and closes it after (default: SSH, as the config says).
    """
    chosen = list(settings.hosts if hosts is None else hosts)
    if not chosen:
        return []

    def ssh(conf: HostSettings) -> AbstractContextManager[Host]:
        from deploytools import targets

        return closing(targets.connect(conf, settings, notice))

    def one(conf: HostSettings) -> HostChecks:
        with (connect or ssh)(conf) as host:
            return check_host(settings, conf, host, max_skew=max_skew, clock=clock)

    pool = ThreadPoolExecutor(min(settings.rollout.max_parallel, len(chosen)), "hosts.check")
    try:
        return list(pool.map(one, chosen))
    finally:  # on Ctrl-C, the hosts not started yet are not asked; those being asked finish
        pool.shutdown(wait=True, cancel_futures=True)


def check_host(
    settings: EnvironmentSettings,
    conf: HostSettings,
    host: Host,
    *,
    max_skew: float = MAX_CLOCK_SKEW,
    clock: Callable[[], float] = time.time,
) -> HostChecks:
    """Check one host (``conf``) through ``host``, a connection the caller owns (a run's own
    hosts, already open); its first command is what connects, if it is not yet."""
    run = _HostRun(settings, conf, host, max_skew, clock)
    return HostChecks(conf.name, tuple(conf.roles), tuple(run.checks()))


@dataclass
class _HostRun:
    """The checks of one host: the login (``true``, bounded by ``timeouts.query``; connecting:
    ``connect``), then one probe (commands/hostcheck.py) for all the others, each of its parts
    bounded by ``timeouts.query``."""

    settings: EnvironmentSettings
    conf: HostSettings
    host: Host
    max_skew: float
    clock: Callable[[], float]
    done: list[Check] = field(default_factory=list)
    parts: dict[str, probe.Part] = field(default_factory=dict)
    python: str = ""
    before: float = 0.0  # this machine's time when the probe was sent
    after: float = 0.0  # and when its answer came

    def checks(self) -> list[Check]:
        names = check_names(self.settings)
        try:
            self._login()
        except DeployToolsError as exc:
            self._connection_lost(exc)
        else:
            self._probe()
        said = {c.name for c in self.done}
        return self.done + [Check(n, None, "not checked") for n in names if n not in said]

    def _login(self) -> None:
        self.host.run(["true"], timeout=self.settings.timeouts.query)
        self.done += [
            self._reachable(),
            Check("host key", True, "known"),
            Check("login", True, f"as {self.conf.user}"),
        ]

    def _connection_lost(self, exc: DeployToolsError) -> None:
        """Sort out what a failure to connect says: unreachable, key, or login refused."""
        if isinstance(exc, HostKeyError):
            # With its fix: how to record the key, or check a changed one and replace it.
            said = f"{exc.problem}; {exc.fix}" if exc.fix else exc.problem
            self.done += [self._reachable(), Check("host key", False, said)]
        elif isinstance(exc, OperatorError | CommandError):  # login refused, or `true` hung
            self.done += [
                self._reachable(),
                Check("host key", True, "known"),
                Check("login", False, exc.problem),
            ]
        else:
            self.done.append(Check("reachable", False, exc.problem))

    def _reachable(self) -> Check:
        return Check("reachable", True, f"{self.conf.address}:{self.conf.port}")

    def _probe(self) -> None:
        """Ask the host everything else at once, then read each check from its report; if the
        host stops answering, the check it was at fails and the rest are not checked."""
        compose = self.settings.runtime == "compose"
        engine_steps = [("docker", self._docker), ("compose", self._compose)]
        steps: list[tuple[str, Callable[[], str]]] = [
            *(engine_steps if compose else [("python", self._python)]),
            ("disk", self._disk),
            ("clock", self._clock),
            ("write", self._write),
        ]
        try:
            self.python = "" if compose else self._app_python()
        except DeployToolsError as exc:  # the connection went away
            return self._lost_at(steps, exc.problem)
        engine = "docker" if compose else "python" if self.python else "none"
        limit = self.settings.timeouts.query
        self.before = self.clock()
        try:
            done = self.host.run(
                probe.probe(limit, self.conf.root, engine, self.python),
                timeout=probe.budget(limit),
                check=False,
            )
        except CommandError:  # out of time (check=False: only that raises)
            return self._lost_at(steps, f"the host gave no answer within {probe.budget(limit):g}s")
        except DeployToolsError as exc:  # the connection went away
            return self._lost_at(steps, exc.problem)
        self.after = self.clock()
        self.parts = probe.parse(done.stdout)
        said = {c.name for c in self.done}
        for name, step in steps:
            if name in said:  # python: its interpreter could not be found
                continue
            try:
                self.done.append(Check(name, True, step()))
            except _Failed as exc:
                self.done.append(Check(name, False, str(exc)))

    def _lost_at(self, steps: list[tuple[str, Callable[[], str]]], problem: str) -> None:
        said = {c.name for c in self.done}
        name = next(n for n, _ in steps if n not in said)
        self.done.append(Check(name, False, problem))

    def _part(self, name: str) -> probe.Part:
        """What the probe said of ``name``; out of time is a failed check, not a lost host."""
        part = self.parts.get(name)
        if part is None:
            raise _Failed(f"the host's probe said nothing of `{probe.shown(name, self.python)}`")
        if part.timed_out:
            limit = self.settings.timeouts.query
            raise _Failed(f"`{probe.shown(name, self.python)}` gave no answer within {limit:g}s")
        return part

    def _docker(self) -> str:
        part = self._part("docker")
        out = part.output.strip()
        if part.code == probe.NOT_FOUND:
            raise _Failed("the docker CLI is not installed")
        if part.code != 0 or not out:
            raise _Failed(f"the Docker engine does not answer: {_last_line(out)}")
        return f"engine {_last_line(out)}"

    def _compose(self) -> str:
        part = self._part("compose")
        out = part.output.strip()
        major = out.removeprefix("v").split(".")[0]
        if part.code != 0 or not major.isdigit() or int(major) < 2:
            raise _Failed(f"docker compose v2 is not available: {_last_line(out) or 'no output'}")
        return f"v{out.removeprefix('v')}"

    def _app_python(self) -> str:
        """The app's interpreter on the host; "" (and the python check failed) when the
        configured one is not there."""
        from deploytools.runtime.process import ProcessRuntime

        try:
            return ProcessRuntime(self.settings, self.host, {}).app_python(None)
        except OperatorError as exc:
            self.done.append(Check("python", False, exc.problem))
            return ""

    def _python(self) -> str:
        part = self._part("python")
        if part.code != 0:
            said = _last_line(part.output) or f"exit {part.code}"
            raise _Failed(f"{self.python} does not run: {said}")
        return f"{self.python}: {_last_line(part.output)}"

    def _disk(self) -> str:
        root, part = self.conf.root, self.parts.get("df")
        try:
            free = fs.parse_free_space(part.output) if part and part.code == 0 else None
        except DeployFailure:
            free = None
        need = min_free_mb(self.settings)
        if free is None:
            raise _Failed(f"cannot tell the free space of {root} (does it exist?)")
        said = f"{free / MB:,.0f} MB free"
        if free < need * MB:
            raise _Failed(f"{said} on {root}, {need} MB needed")
        return said

    def _clock(self) -> str:
        """The host's time must fall within ``max_skew`` of this machine's while it was asked:
        between before and after, less what the probe took on the host (the round trip is no
        skew)."""
        start = self._part("start")
        if start.code != 0:
            raise _Failed(f"`date` failed: {_last_line(start.output)}")
        remote = _seconds(start.output)
        if remote is None:
            raise _Failed(f"cannot read the host's time from `date`: {start.output.strip()[:60]!r}")
        end = self.parts.get("end")
        ended = _seconds(end.output) if end and end.code == 0 else None
        before, after = self.before, self.after
        after -= min(max(ended - remote, 0.0) if ended is not None else 0.0, after - before)
        skew = remote - after if remote > after else min(remote - before, 0.0)
        if abs(skew) > self.max_skew:
            ahead = "ahead of" if skew > 0 else "behind"
            raise _Failed(f"{abs(skew):.1f}s {ahead} this machine (at most {self.max_skew:g}s)")
        return f"{skew:+.1f}s (±{(after - before) / 2:.1f}s)"

    def _write(self) -> str:
        """``mktemp`` (0600) then ``rm``: what the system says when it cannot (read-only,
        permission denied, no such directory) is the reason shown."""
        root, made = self.conf.root, self._part("mktemp")
        if made.code != 0:
            reason = _last_line(made.output).rpartition(": ")[2] or f"mktemp exited {made.code}"
            raise _Failed(f"cannot create a file in {root}: {reason}")
        removed = self._part("rm")
        if removed.code != 0:
            raise _Failed(f"cannot remove {_last_line(made.output)}: {_last_line(removed.output)}")
        return "writable"


class _Failed(Exception):
    """A check that failed while the host still answers."""


def min_free_mb(settings: EnvironmentSettings) -> int:
    """What the runtime's and the backup's own checks want free, whichever is more."""
    compose = settings.compose.min_free_mb if settings.compose else 0
    return max(settings.database.min_free_mb, compose)


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[-1][:200]


def _seconds(date: str) -> float | None:
    """The host's time from ``date +%s.%N``; one without %N (BusyBox) prints it as is: whole
    seconds then. None when it is not a time."""
    out = date.strip()
    try:
        return float(out if out.replace(".", "").isdigit() else out.split(".")[0])
    except ValueError:
        return None
