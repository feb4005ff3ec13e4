"""Can a run work on these hosts? Each one is asked, concurrently, before anything changes.

Per host, in order (a check whose ground an earlier one took away is not run): reachable
(TCP, SSH greeting), host key known, login, then the runtime (compose: the Docker engine and
compose v2; process: the app's interpreter), free space on the host's ``root``, clock skew
against this machine, and write access to ``root`` (a temp file made and removed: the only
trace a check leaves). ``hosts.check`` prints the result; ``check_host`` on a run's own
connections is what a deploy calls first, to change nothing anywhere when one fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass, field
from typing import Any

from deploytools.commands import compose as cmd
from deploytools.config import EnvironmentSettings, HostSettings
from deploytools.errors import (
    CommandError,
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
    """The checks of one host, each bounded by ``timeouts.query`` (connecting: ``connect``)."""

    settings: EnvironmentSettings
    conf: HostSettings
    host: Host
    max_skew: float
    clock: Callable[[], float]
    done: list[Check] = field(default_factory=list)

    def checks(self) -> list[Check]:
        names = check_names(self.settings)
        steps: list[tuple[str, Callable[[], str]]] = [
            ("login", self._login),
            *self._engine(),
            ("disk", self._disk),
            ("clock", self._clock),
            ("write", self._write),
        ]
        for name, step in steps:
            if not self._run(name, step):
                break
        said = {c.name for c in self.done}
        return self.done + [Check(n, None, "not checked") for n in names if n not in said]

    def _run(self, name: str, step: Callable[[], str]) -> bool:
        """Run one check; False when the host cannot be asked anything more."""
        try:
            self.done.append(Check(name, True, step()))
        except _Failed as exc:
            self.done.append(Check(name, False, str(exc)))
        except DeployToolsError as exc:
            return self._connection_lost(name, exc)
        return True

    def _connection_lost(self, name: str, exc: DeployToolsError) -> bool:
        """Sort out what a failure to connect says: unreachable, key, or login refused."""
        if name != "login":  # the connection went away under a later check
            self.done.append(Check(name, False, exc.problem))
            return False
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
        return False

    def _query(self, argv: list[str]) -> tuple[int, str]:
        """Exit code and output of a query; a timeout is a failed check, not a lost host."""
        try:
            done = self.host.run(argv, timeout=self.settings.timeouts.query, check=False)
        except CommandError:  # timed out (check=False: only that raises)
            limit = self.settings.timeouts.query
            raise _Failed(f"`{' '.join(argv[:2])}` gave no answer within {limit:g}s") from None
        return done.returncode, (done.stdout + done.stderr).strip()

    def _login(self) -> str:
        self.host.run(["true"], timeout=self.settings.timeouts.query)
        self.done += [self._reachable(), Check("host key", True, "known")]
        return f"as {self.conf.user}"

    def _reachable(self) -> Check:
        return Check("reachable", True, f"{self.conf.address}:{self.conf.port}")

    def _engine(self) -> list[tuple[str, Callable[[], str]]]:
        if self.settings.runtime == "compose":
            return [("docker", self._docker), ("compose", self._compose)]
        return [("python", self._python)]

    def _docker(self) -> str:
        code, out = self._query(cmd.server_version())
        if code == 127:
            raise _Failed("the docker CLI is not installed")
        if code != 0 or not out:
            raise _Failed(f"the Docker engine does not answer: {_last_line(out)}")
        return f"engine {_last_line(out)}"

    def _compose(self) -> str:
        code, out = self._query(cmd.version())
        major = out.removeprefix("v").split(".")[0]
        if code != 0 or not major.isdigit() or int(major) < 2:
            raise _Failed(f"docker compose v2 is not available: {_last_line(out) or 'no output'}")
        return f"v{out.removeprefix('v')}"

    def _python(self) -> str:
        from deploytools.runtime.process import ProcessRuntime

        try:
            python = ProcessRuntime(self.settings, self.host, {}).app_python(None)
        except OperatorError as exc:
            raise _Failed(exc.problem) from None
        code, out = self._query([python, "--version"])
        if code != 0:
            raise _Failed(f"{python} does not run: {_last_line(out) or f'exit {code}'}")
        return f"{python}: {_last_line(out)}"

    def _disk(self) -> str:
        from deploytools.runtime.base import free_space

        root = self.conf.root
        free = free_space(self.host, root, self.settings.timeouts.query)
        need = min_free_mb(self.settings)
        if free is None:
            raise _Failed(f"cannot tell the free space of {root} (does it exist?)")
        said = f"{free / MB:,.0f} MB free"
        if free < need * MB:
            raise _Failed(f"{said} on {root}, {need} MB needed")
        return said

    def _clock(self) -> str:
        """The host's time must fall within ``max_skew`` of this machine's while it was asked
        (between before and after: the round trip is no skew)."""
        before = self.clock()
        code, out = self._query(["date", "+%s.%N"])
        after = self.clock()
        if code != 0:
            raise _Failed(f"`date` failed: {_last_line(out)}")
        try:  # a date without %N (BusyBox) prints it as is: whole seconds then
            remote = float(out if out.replace(".", "").isdigit() else out.split(".")[0])
        except ValueError:
            raise _Failed(f"cannot read the host's time from `date`: {out[:60]!r}") from None
        skew = remote - after if remote > after else min(remote - before, 0.0)
        if abs(skew) > self.max_skew:
            ahead = "ahead of" if skew > 0 else "behind"
            raise _Failed(f"{abs(skew):.1f}s {ahead} this machine (at most {self.max_skew:g}s)")
        return f"{skew:+.1f}s (±{(after - before) / 2:.1f}s)"

    def _write(self) -> str:
        """``mktemp`` (0600) then ``rm``: what the system says when it cannot (read-only,
        permission denied, no such directory) is the reason shown."""
        root = self.conf.root
        code, out = self._query(["mktemp", "-p", root, ".deploytools-check.XXXXXXXX"])
        if code != 0:
            reason = _last_line(out).rpartition(": ")[2] or f"mktemp exited {code}"
            raise _Failed(f"cannot create a file in {root}: {reason}")
        code, said = self._query(["rm", "-f", "--", _last_line(out)])
        if code != 0:
            raise _Failed(f"cannot remove {_last_line(out)}: {_last_line(said)}")
        return "writable"

class _Failed(Exception):
    """A check that failed while the host still answers."""


def min_free_mb(settings: EnvironmentSettings) -> int:
    """What the runtime's and the backup's own checks want free, whichever is more."""
    compose = settings.compose.min_free_mb if settings.compose else 0
    return max(settings.database.min_free_mb, compose)


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[-1][:200]
