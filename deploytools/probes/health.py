"""Wait until every service of a stack is healthy, and stays so - or say exactly why it is not.

A service passes a check when the runtime reports it running, its compose healthcheck (if it
has one and ``compose_health`` is on) says healthy, and its HTTP probe (if it has a ``url``)
answers the expected status with the expected JSON fields. It is healthy after ``consecutive``
passes in a row, and it counts once it has stayed healthy for ``probe.min_healthy`` seconds:
probes still passing, the same containers or process, its restart count unchanged (a release
that answers once and then crash-loops must not be recorded as good). A one-shot service (a
migration, collectstatic: ``Runtime.one_shots``) is done instead when it exits 0, however fast,
and fails the wait at once when it exits otherwise.

All services are waited for together, every ``probe.interval`` seconds (the runtime's state
every ``STATUS_INTERVAL``), each against its own ``probe.timeout`` (capped by
``timeouts.health``), so the holds overlap: a wait lasts the slowest service's time to become
healthy plus its ``min_healthy``, not a sum. A service that exits or restarts while waited on
fails the wait at once. A failure names the service, the probe, the last answer and ends with
the service's last log lines.

Probe URLs take ``{NAME}`` placeholders from the env file; a loopback URL is reached through
``Host.forward``, so a remote host's probe works without opening its port to the network.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from deploytools.config import EnvironmentSettings, ProbeSettings, ServiceSettings
from deploytools.errors import DeployFailure, OperatorError
from deploytools.hosts.base import Host
from deploytools.hosts.forward import reach
from deploytools.runtime.base import (
    MISSING,
    RESTARTING,
    RUNNING,
    Runtime,
    ServiceStatus,
    log_tail,
    see_logs,
)
from deploytools.templating import fill
from deploytools.ui import Ui

STATUS_INTERVAL = 0.5  # seconds between two looks at the runtime's state (see _Waiter.run)
BODY_CHARS = 300


class ProbeError(Exception):
    """The probe got no HTTP answer (refused, timed out, reset...)."""


Fetch = Callable[[str, float], tuple[int, str]]


@dataclass(frozen=True)
class Held:
    """A service since it became healthy: when (seconds into the wait), and the state it must
    keep (the same containers or process, as many restarts)."""

    since: float
    state: ServiceStatus


@dataclass
class Target:
    """What to wait for on one service, and what was seen so far."""

    service: str
    probe: ProbeSettings
    compose_health: bool
    url: str | None  # as configured, placeholders filled (shown in messages)
    timeout: float
    oneshot: bool = False
    fetch_url: str | None = None  # the same URL through a forwarded port
    passes: int = 0
    last: str = "not checked yet"
    status: ServiceStatus | None = None
    held: Held | None = None  # set once it is healthy: it must then stay so

    @property
    def hold(self) -> float:
        """How long it must stay healthy once it is; a one-shot is done when it completes."""
        return 0.0 if self.oneshot else self.probe.min_healthy

    def describe_plan(self) -> str:
        """One line of a dry run's plan: what the wait will insist on for this service."""
        if self.oneshot:
            return f"{self.service}: one-shot, must exit 0 within {self.timeout:.0f} s"
        line = (
            f"{self.service}: {self.describe_probe()}, {self.probe.consecutive} passes in a row "
            f"within {self.timeout:.0f} s"
        )
        if self.hold > 0:
            line += f", then stay healthy for {self.hold:g} s (same process, no restart)"
        return line

    def describe_probe(self) -> str:
        if self.oneshot:
            return "one-shot: done when it exits 0"
        checks = []
        if self.url:
            fields = ", ".join(f"{k} == {v!r}" for k, v in self.probe.json_fields.items())
            checks.append(
                f"GET {self.url} -> {self.probe.expect_status}"
                + (f" with {fields}" if fields else "")
            )
        if self.compose_health:
            checks.append("container healthcheck")
        return " + ".join(checks) or "process running"


@dataclass(frozen=True)
class Healthy:
    service: str
    seconds: float  # when it became healthy (a one-shot: when it completed)
    probe: str
    release: str = ""
    held: float = 0.0  # how long it then stayed healthy

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "seconds": round(self.seconds, 3),
            "probe": self.probe,
            "release": self.release,
            "held": self.held,
        }


def targets_for(
    settings: EnvironmentSettings,
    runtime: Runtime,
    env_values: Mapping[str, str],
    services: Sequence[str] = (),
    timeout: float | None = None,
    release: str | None = None,
) -> list[Target]:
    """Check every probe before waiting: a URL that does not parse is an operator error.

    ``{NAME}`` in a URL or a ``json_fields`` value is filled from the env file, and
    ``{RELEASE_ID}`` with ``release`` (default: the release the runtime runs), so a probe can
    insist on the new release answering rather than whatever holds the port.
    """
    cap = timeout if timeout is not None else settings.timeouts.health
    found = []
    one_shots = runtime.one_shots()
    for name in runtime.require_services(services):
        conf = settings.services.get(name, ServiceSettings())
        where = f"environments.{settings.name}.services.{name}.probe"
        url = probe_url(settings, name, env_values)
        probe = conf.probe
        if any(isinstance(v, str) and "{" in v for v in probe.json_fields.values()):
            values = {**env_values, "RELEASE_ID": release or runtime.current_release() or ""}
            fields = {
                k: fill(v, values, where=f"{where}.json_fields.{k}") if isinstance(v, str) else v
                for k, v in probe.json_fields.items()
            }
            probe = probe.model_copy(update={"json_fields": fields})
        found.append(
            Target(
                service=name,
                probe=probe,
                compose_health=conf.compose_health and runtime.kind == "compose",
                url=url,
                timeout=min(conf.probe.timeout, cap) if timeout is None else cap,
                oneshot=name in one_shots,
            )
        )
    return found


def probe_url(
    settings: EnvironmentSettings, service: str, env_values: Mapping[str, str]
) -> str | None:
    """``service``'s probe URL with its ``{NAME}`` placeholders filled and checked (an
    operator error naming the key if it does not parse); None when it has none."""
    url = settings.services.get(service, ServiceSettings()).probe.url
    if not url:
        return None
    where = f"environments.{settings.name}.services.{service}.probe.url"
    return check_url(fill(url, env_values, where=where), where)


def check_url(url: str, where: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise OperatorError(
            f"{where}: {url!r} is not a valid URL ({exc})", "write http://HOST:PORT/PATH"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OperatorError(
            f"{where}: {url!r} is not an http(s) URL with a host", "write http://HOST:PORT/PATH"
        )
    return url


def wait_healthy(
    settings: EnvironmentSettings,
    runtime: Runtime,
    ui: Ui,
    *,
    host: Host,
    env_values: Mapping[str, str],
    services: Sequence[str] = (),
    timeout: float | None = None,
    release: str | None = None,
    fetch: Fetch | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Healthy]:
    """Block until the services are healthy and have stayed so (one-shots: completed); raise
    ``DeployFailure`` with the details if not.

    ``timeout`` replaces every service's own timeout (the command line's ``--timeout``);
    ``release`` is what ``{RELEASE_ID}`` in a probe's ``json_fields`` must equal.
    """
    targets = targets_for(settings, runtime, env_values, services, timeout, release)
    with contextlib.ExitStack() as stack:
        for target in targets:
            if target.url:
                target.fetch_url = reach(stack, host, target.url)
        waiter = _Waiter(settings, runtime, ui, fetch or stack.enter_context(http_fetch()), clock)
        return waiter.run(targets, sleep)


class _Waiter:
    """One wait: the pending targets, polled together until each passes or fails."""

    def __init__(
        self,
        settings: EnvironmentSettings,
        runtime: Runtime,
        ui: Ui,
        fetch: Fetch,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.ui = ui
        self.fetch = fetch
        self.clock = clock
        self.started = clock()
        self.done: list[Healthy] = []

    def run(self, targets: list[Target], sleep: Callable[[float], None]) -> list[Healthy]:
        """Probe every ``interval``; ask the runtime for its state every ``STATUS_INTERVAL``.

        A compose status is a ``docker compose ps`` process: ten a second would take a core
        from the services starting up. A service with an HTTP probe is judged at each probe
        (with the latest state); one without, at each new state only. Services being held
        stay in the loop: their probes go on at the same pace.
        """
        pending = {t.service: t for t in targets}
        interval = min((t.probe.interval for t in targets), default=0.1)
        statuses: dict[str, ServiceStatus] = {}
        asked = -STATUS_INTERVAL
        while pending:
            tick = self.clock()
            fresh = tick - asked >= STATUS_INTERVAL - 1e-9
            if fresh:
                statuses, asked = self.runtime.status(), tick
            for target in list(pending.values()):
                if not fresh and (target.fetch_url is None or target.oneshot):
                    continue  # nothing new to judge it by
                if self._done(target, statuses.get(target.service)):
                    del pending[target.service]
            if pending:
                sleep(max(0.0, tick + interval - self.clock()))
        return self.done

    def _done(self, target: Target, status: ServiceStatus | None) -> bool:
        status = status or ServiceStatus(target.service, MISSING)
        target.status = status
        if status.state == MISSING:
            raise self._failure(
                target,
                f"{target.service} is not running (was it started?) while waiting for it to "
                + ("complete" if target.oneshot else "become healthy"),
            )
        if target.oneshot:
            return self._completed(target, status)
        if target.held is not None:
            return self._still_healthy(target, target.held, status)
        if status.crashed:
            raise self._failure(
                target,
                f"{target.service} stopped ({status.describe()}) while waiting for it to "
                "become healthy",
            )
        return self._healthy(target, status)

    def _completed(self, target: Target, status: ServiceStatus) -> bool:
        """A one-shot: done at exit 0, failed at any other end; else it is still at work."""
        elapsed = self.clock() - self.started
        target.last = f"state is {status.describe()}"
        if status.completed:
            self.done.append(
                Healthy(target.service, elapsed, "completed (exit code 0)", status.release)
            )
            self.ui.success(f"{target.service} completed after {elapsed:.1f}s (exit code 0)")
            return True
        if status.crashed:
            code = f"exit code {status.exit_code}"
            if status.exit_code is None:
                code = "exit code unknown"
            raise self._failure(target, f"one-shot {target.service} failed ({code})")
        if elapsed >= target.timeout:
            raise self._failure(
                target, f"one-shot {target.service} did not complete within {target.timeout:g}s"
            )
        return False

    def _healthy(self, target: Target, status: ServiceStatus) -> bool:
        elapsed = self.clock() - self.started
        budget = max(0.05, target.timeout - elapsed)
        reason = _reason(target, status, self.fetch, budget, self.ui.redact)
        if reason is None:
            target.passes += 1
            target.last = "passed"
            if target.passes < target.probe.consecutive:
                return False
            seconds = self.clock() - self.started
            probe = target.describe_probe()
            if target.hold <= 0:
                self.done.append(Healthy(target.service, seconds, probe, status.release))
                self.ui.success(f"{target.service} healthy after {seconds:.1f}s ({probe})")
                return True
            target.held = Held(seconds, status)
            self.ui.success(
                f"{target.service} healthy after {seconds:.1f}s ({probe}); "
                f"it must stay so for {target.hold:g}s"
            )
            return False
        target.passes = 0
        target.last = reason
        if self.clock() - self.started >= target.timeout:
            raise self._failure(target, f"{target.service} not healthy after {target.timeout:g}s")
        return False

    def _still_healthy(self, target: Target, held: Held, status: ServiceStatus) -> bool:
        """Held: any change of process, any restart, any failed check fails the wait."""
        change = _replaced(held.state, status, self.runtime.kind)
        if change is None:
            budget = target.probe.request_timeout
            reason = _reason(target, status, self.fetch, budget, self.ui.redact)
            if reason is not None:  # the state in hand may predate the cause: ask again
                fresh = self.runtime.status().get(target.service, status)
                target.status = fresh
                change = _replaced(held.state, fresh, self.runtime.kind)
                change = change or f"its health check failed: {reason}"
        elapsed = self.clock() - self.started
        if change is not None:
            target.last = change
            raise self._failure(
                target,
                f"{target.service} was healthy at {held.since:.1f}s, then failed "
                f"{elapsed - held.since:.1f}s later: {change}",
            )
        if elapsed - held.since < target.hold:
            return False
        probe = target.describe_probe()
        self.done.append(Healthy(target.service, held.since, probe, status.release, target.hold))
        self.ui.success(f"{target.service} stayed healthy for {target.hold:g}s")
        return True

    def _failure(self, target: Target, headline: str) -> DeployFailure:
        lines = [headline]
        if target.oneshot:
            lines.append(f"  check: {target.describe_probe()}")
        else:
            lines += [
                f"  probe: {target.describe_probe()}, {target.probe.consecutive} passes in a row",
                f"  last result: {target.last}",
            ]
        if target.status is not None:
            detail = f" ({target.status.detail})" if target.status.detail else ""
            lines.append(f"  state: {target.status.describe()}{detail}")
        lines.extend(log_tail(self.runtime, target.service))
        return DeployFailure("\n".join(lines), see_logs(self.settings.name, target.service))


def _replaced(before: ServiceStatus, now: ServiceStatus, kind: str) -> str | None:
    """How ``now`` is no longer what was healthy at ``before``: restarted, replaced, stopped."""
    if before.restarts is not None and now.restarts is not None and now.restarts > before.restarts:
        return f"restarted (restart count {before.restarts} -> {now.restarts})"
    if now.state == RESTARTING:  # seen between its exit and Docker's count of the restart
        return "restarted (it exited and is being started again)"
    if before.instance and now.instance and now.instance != before.instance:
        what = "pid changed" if kind == "process" else "container replaced"
        return f"{what} ({before.instance} -> {now.instance})"
    if now.state != RUNNING:
        return f"stopped ({now.describe()})"
    return None


def check_now(
    targets: Sequence[Target], runtime: Runtime, fetch: Fetch, redact: Callable[[str], str]
) -> tuple[str, str] | None:
    """One look at each service, no count of passes and no hold: the first that does not pass
    and why, or None. For a stack that is up and must stay so (a flag stage's soak), where a
    one-shot's exit is old news and is not looked at."""
    statuses = runtime.status()
    for target in targets:
        if target.oneshot:
            continue
        status = statuses.get(target.service) or ServiceStatus(target.service, MISSING)
        reason = _reason(target, status, fetch, target.probe.request_timeout, redact)
        if reason is not None:
            return target.service, reason
    return None


def _reason(
    target: Target,
    status: ServiceStatus,
    fetch: Fetch,
    budget: float,
    redact: Callable[[str], str],
) -> str | None:
    """Why this check does not pass, or None when it does."""
    if status.state != RUNNING:
        return f"state is {status.describe()}"
    if target.compose_health and status.health and status.health != "healthy":
        return f"container healthcheck says {status.health}"
    if target.fetch_url is None:
        return None
    try:
        code, body = fetch(target.fetch_url, min(target.probe.request_timeout, budget))
    except ProbeError as exc:
        return str(exc)
    return judge(target.probe, code, body, redact)


def judge(
    probe: ProbeSettings, code: int, body: str, redact: Callable[[str], str]
) -> str | None:
    """None if the answer is the expected one, else what is wrong with it.

    The body is shown redacted before it is shortened: cut first, a secret at the cut (or one
    whose spaces are squeezed) would no longer be recognised, and its head would be shown.
    """
    shown = excerpt(body, redact)
    if code != probe.expect_status:
        return f"HTTP {code} (expected {probe.expect_status}): {shown}"
    if not probe.json_fields:
        return None
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return f"HTTP {code} but the body is not JSON: {shown}"
    for key, expected in probe.json_fields.items():
        value = _lookup(data, key)
        if value != expected:
            return f"HTTP {code} but {key} is {value!r} (expected {expected!r}): {shown}"
    return None


def excerpt(body: str, redact: Callable[[str], str]) -> str:
    """The head of an answer's body to show, on one line, redacted before it is cut."""
    return " ".join(redact(body).split())[:BODY_CHARS]


def _lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def load_modules() -> None:
    """Import the HTTP client ahead of the wait (see ``Step.prepare``)."""
    import httpx  # noqa: F401


@contextlib.contextmanager
def http_fetch() -> Iterator[Fetch]:
    """GET through one httpx client (kept-alive connection); no retries, no redirects."""
    import httpx

    with httpx.Client(follow_redirects=False, trust_env=False) as client:

        def fetch(url: str, timeout: float) -> tuple[int, str]:
            try:
                response = client.get(url, timeout=timeout)
            except httpx.HTTPError as exc:
                raise ProbeError(f"{type(exc).__name__}: {exc or 'no answer'}") from None
            return response.status_code, response.text

        yield fetch
