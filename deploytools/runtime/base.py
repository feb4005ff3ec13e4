"""What every runtime offers the steps and tasks: start, stop, look at and talk to a stack.

A runtime acts on one host. ``status``, ``one_shots`` and ``logs`` are all that health waiting
needs from it, so a wait works the same for containers and for plain processes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from deploytools.commands import fs
from deploytools.errors import DeployFailure, OperatorError
from deploytools.hosts.base import Host, Result

RUNNING = "running"
EXITED = "exited"
RESTARTING = "restarting"
MISSING = "missing"  # configured, but no container or process at all
LOG_LINES = 20  # a failure shows this many of the service's last log lines
SEARCHED_LINES = 50  # of a stopped service, searched for the reason it stopped
# What a process prints (strerror of ENOSPC) when the disk it writes to is full.
NO_SPACE = "No space left on device"
MB = 1024 * 1024
# A release id becomes an image tag: Docker's tag grammar.
RELEASE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def check_release(release: str) -> str:
    if not RELEASE_ID.match(release):
        raise OperatorError(
            f"release id {release!r} cannot name an image tag",
            "use letters, digits, '_', '.', '-' (at most 128, not starting with '.' or '-')",
        )
    return release


@dataclass(frozen=True)
class ServiceStatus:
    """One service as the runtime sees it right now."""

    service: str
    state: str  # running | exited | restarting | created | paused | dead | missing
    health: str = ""  # healthy | unhealthy | starting | "" (no healthcheck)
    exit_code: int | None = None
    release: str = ""
    detail: str = ""  # e.g. a container name or a pid
    # Which containers or process run it: another value means it was replaced meanwhile.
    instance: str = ""
    restarts: int | None = None  # restarts by the runtime's own policy; None: not counted

    @property
    def crashed(self) -> bool:
        """It was started and is not running any more (or is being restarted after an exit)."""
        return self.state in (EXITED, RESTARTING, "dead")

    @property
    def completed(self) -> bool:
        """It ran to its end and said it succeeded: a one-shot's success."""
        return self.state == EXITED and self.exit_code == 0

    def describe(self) -> str:
        words = [self.state]
        if self.health:
            words.append(self.health)
        if self.exit_code is not None and self.state in (EXITED, "dead"):
            words.append(f"exit code {self.exit_code}")
        return ", ".join(words)

    def as_dict(self) -> dict[str, object]:
        return {
            "service": self.service,
            "state": self.state,
            "health": self.health,
            "exit_code": self.exit_code,
            "release": self.release,
            "detail": self.detail,
            "restarts": self.restarts,
        }


@dataclass(frozen=True)
class ImageCheck:
    """A release's images against the ids recorded with it: what ``up`` may use as it is."""

    retag: dict[str, str] = field(default_factory=dict)  # image -> its recorded id, still here
    missing: list[str] = field(default_factory=list)  # the recorded image (or the tag) is gone
    moved: list[str] = field(default_factory=list)  # tags that now name another image

    @property
    def ready(self) -> bool:
        return not self.retag and not self.missing


class Runtime(Protocol):
    """A stack on one host. ``release`` ids name images (compose) or process generations."""

    kind: str
    host: Host
    # The machine with the project's checkout, where a release's code and config are read
    # from (git): the host itself when deploytools runs there, else the site's control machine.
    control: Host

    def check(self) -> None:
        """Fail with an operator-facing message when the runtime cannot work on this host."""
        ...

    def services(self) -> list[str]:
        """Every service this runtime would start, in definition order."""
        ...

    def require_services(self, names: Sequence[str]) -> list[str]:
        """``names`` if all exist (all services when empty); else an ``OperatorError``."""
        ...

    def build(self, release: str, source: Path | None = None) -> dict[str, str]:
        """Prepare what ``up(release)`` runs; returns image (or artifact) name -> id.

        ``source`` is another checkout of the project to build from (a rollback's worktree);
        everything else (env file, state, shared data) stays the environment's own.
        """
        ...

    def prepare_build(self, release: str) -> dict[str, str]:
        """What ``build(release)`` on this host will need from the control machine, made there
        before any host receives anything, so that what cannot be made fails the run with
        nothing shipped anywhere (process: the wheels of ``releases.wheels``); writes nothing
        on the host. Returns what was made, in words (empty: nothing was needed)."""
        ...

    def has_release(self, release: str) -> bool:
        """``up(release)`` can run without building (a rollback's images are still there)."""
        ...

    def image_check(self, release: str, recorded: Mapping[str, str]) -> ImageCheck:
        """How ``release``'s images stand against ``recorded`` (name -> id); with nothing
        recorded, the tags' presence is all there is to go by. Changes nothing."""
        ...

    def retag(self, images: Mapping[str, str]) -> None:
        """Point each image name at the id given (``ImageCheck.retag``)."""
        ...

    def remove_release(self, release: str) -> list[str]:
        """Delete what ``build(release)`` made (retention); returns what was removed."""
        ...

    def stored_releases(self) -> list[str]:
        """The releases whose artifacts retention may prune on this host, oldest first."""
        ...

    def plan_build(self, release: str) -> list[str]:
        """What ``build(release)`` would run, in words and commands; runs nothing."""
        ...

    def plan_up(self, release: str, services: Sequence[str] = ()) -> list[str]:
        """What ``up(release)`` would run, in words and commands; runs nothing."""
        ...

    def up(self, release: str, services: Sequence[str] = ()) -> None:
        """Start (or replace) the services on ``release``; all of them when none are named."""
        ...

    def stop(self, services: Sequence[str] = ()) -> None:
        """Stop services but keep them defined (a later ``up`` starts them again)."""
        ...

    def down(self) -> None:
        """Stop and remove everything this runtime started."""
        ...

    def status(self) -> dict[str, ServiceStatus]:
        """Every known service by name, including those that are not running."""
        ...

    def one_shots(self) -> set[str]:
        """Services that run to completion (a migration, collectstatic): done once they exit 0.

        An ``OperatorError`` when a declaration contradicts the runtime's own configuration.
        """
        ...

    def logs(self, service: str, lines: int = 50) -> str: ...

    def exec(self, service: str, command: Sequence[str]) -> Result:
        """Run ``command`` beside (process) or inside (compose) a running service."""
        ...

    def current_release(self) -> str | None:
        """The release the running services were started on, if one can tell."""
        ...

    def check_migrations(self) -> str:
        """What ``run_alembic`` runs alembic on (the interpreter, the service), or an
        ``OperatorError`` saying why it could not: asked before anything changes."""
        ...

    def run_alembic(
        self, release: str | None, args: Sequence[str], env: Mapping[str, str]
    ) -> Result:
        """The app's alembic with ``args``, run where the app runs: in ``release`` (None: the
        app as it stands, see each runtime), with the env file's values and ``env`` in its
        environment, never on its command line. Bounded by ``timeouts.command``; a non-zero
        exit is the caller's to explain. An ``OperatorError`` when it cannot be started."""
        ...

    def unreachable(self, timeout: float) -> str | None:
        """What this runtime needs and does not answer within ``timeout`` (``the Docker engine
        on web-1``), or None when it can act now."""
        ...

    def out_of_space(self) -> str | None:
        """Which services stopped because the disk is full, and where; None if none did."""
        ...


def log_tail(runtime: Runtime, service: str, lines: int = LOG_LINES) -> list[str]:
    """The last ``lines`` of a service's log, headed and indented for a failure message."""
    try:
        log = runtime.logs(service, lines).rstrip()
    except DeployFailure as exc:
        log = f"(could not read the log: {exc.problem})"
    body = log.splitlines() or ["(empty)"]
    return [f"  last {lines} log lines of {service}:", *(f"    {line}" for line in body)]


def see_logs(env: str, service: str) -> str:
    """The fix of a failure that showed a service's log tail: where to read more of it."""
    return f"see the log above; more with: invoke stack.logs --env {env} --service {service}"


def whole_release(
    runtime: Runtime, ours: Collection[str], only: Collection[str] | None = None
) -> str | None:
    """The release the whole stack runs now, as the runtime shows it: every service running
    (one-shots aside: they are done once they exited; ``only``: the services a host's roles
    give it), and those on one of ``ours`` (the releases recorded; not a postgres:16 beside
    them) all on the same. None after a start cut short, a crash, or a stack left half on each
    release."""
    done = runtime.one_shots()
    statuses = [
        s
        for name, s in runtime.status().items()
        if name not in done and (only is None or name in only)
    ]
    if not statuses or any(s.state != RUNNING for s in statuses):
        return None
    releases = {s.release for s in statuses if s.release in ours}
    return releases.pop() if len(releases) == 1 else None


def free_space(host: Host, path: str, timeout: float) -> int | None:
    """Bytes free on the disk holding ``path`` on ``host`` (``df``); None when ``df`` cannot
    tell (no such path on that host, no ``df``)."""
    try:
        return fs.parse_free_space(host.run(fs.free_space(path), timeout=timeout).stdout)
    except DeployFailure:
        return None


def disk_full(runtime: Runtime, host: str, place: Callable[[], str]) -> str | None:
    """``runtime.out_of_space``: the services that stopped (exited, restarting, or restarted
    by their policy: a snapshot may catch one running again) with ``NO_SPACE`` in their last
    log lines; ``place()`` says where the disk is full."""
    names = [
        name
        for name, status in runtime.status().items()
        if (status.crashed or (status.restarts or 0) > 0)
        and NO_SPACE.lower() in runtime.logs(name, SEARCHED_LINES).lower()
    ]
    if not names:
        return None
    return f"a disk is full on {host}: {', '.join(names)} stopped with {NO_SPACE!r} ({place()})"


def free_said(free: int | None) -> str:
    return "free space unknown" if free is None else f"{free / MB:.1f} MB free"
