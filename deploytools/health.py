"""Wait until every service of a stack is healthy - or say exactly why it is not.

A service passes a check when the runtime reports it running, its compose healthcheck (if it
has one and ``compose_health`` is on) says healthy, and its HTTP probe (if it has a ``url``)
answers the expected status with the expected JSON fields. It is healthy after ``consecutive``
passes in a row. All services are polled together, every ``probe.interval`` seconds (the
runtime's state every ``STATUS_INTERVAL``), each against its own ``probe.timeout`` (capped by
``timeouts.health``); a service that exits or restarts while waited on fails the wait at once.
A failure names the service, the probe, the last answer and ends with the service's last log
lines.

Probe URLs take ``{NAME}`` placeholders from the env file; a loopback URL is reached through
``Host.forward``, so a remote host's probe works without opening its port to the network.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from deploytools.config import EnvironmentSettings, ProbeSettings, ServiceSettings
from deploytools.errors import DeployFailure, OperatorError
from deploytools.hosts.base import Host
from deploytools.runtime.base import MISSING, RUNNING, Runtime, ServiceStatus
from deploytools.templating import fill
from deploytools.ui import Ui

LOG_LINES = 20
STATUS_INTERVAL = 0.5  # seconds between two looks at the runtime's state (see _Waiter.run)
BODY_CHARS = 300
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ProbeError(Exception):
    """The probe got no HTTP answer (refused, timed out, reset...)."""


Fetch = Callable[[str, float], tuple[int, str]]


@dataclass
class Target:
    """What to wait for on one service, and what was seen so far."""

    service: str
    probe: ProbeSettings
    compose_health: bool
    url: str | None  # as configured, placeholders filled (shown in messages)
    timeout: float
    fetch_url: str | None = None  # the same URL through a forwarded port
    passes: int = 0
    last: str = "not checked yet"
    status: ServiceStatus | None = None

    def describe_probe(self) -> str:
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
    seconds: float
    probe: str
    release: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "seconds": round(self.seconds, 3),
            "probe": self.probe,
            "release": self.release,
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
    for name in runtime.require_services(services):
        conf = settings.services.get(name, ServiceSettings())
        where = f"environments.{settings.name}.services.{name}.probe"
        url = None
        if conf.probe.url:
            url = check_url(fill(conf.probe.url, env_values, where=f"{where}.url"), f"{where}.url")
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
            )
        )
    return found


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
    """Block until the services are healthy; raise ``DeployFailure`` with the details if not.

    ``timeout`` replaces every service's own timeout (the command line's ``--timeout``);
    ``release`` is what ``{RELEASE_ID}`` in a probe's ``json_fields`` must equal.
    """
    targets = targets_for(settings, runtime, env_values, services, timeout, release)
    with contextlib.ExitStack() as stack:
        for target in targets:
            if target.url:
                target.fetch_url = _forwarded(stack, host, target.url)
        waiter = _Waiter(settings, runtime, ui, fetch or stack.enter_context(_httpx_fetch()), clock)
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
        (with the latest state); one without, at each new state only.
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
                if not fresh and target.fetch_url is None:
                    continue  # nothing new to judge it by
                if self._healthy(target, statuses.get(target.service)):
                    del pending[target.service]
            if pending:
                sleep(max(0.0, tick + interval - self.clock()))
        return self.done

    def _healthy(self, target: Target, status: ServiceStatus | None) -> bool:
        status = status or ServiceStatus(target.service, MISSING)
        target.status = status
        if status.crashed or status.state == MISSING:
            verb = (
                "is not running (was it started?)"
                if status.state == MISSING
                else f"stopped ({status.describe()})"
            )
            raise self._failure(
                target, f"{target.service} {verb} while waiting for it to become healthy"
            )
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
            self.done.append(Healthy(target.service, seconds, probe, status.release))
            self.ui.success(f"{target.service} healthy after {seconds:.1f}s ({probe})")
            return True
        target.passes = 0
        target.last = reason
        if self.clock() - self.started >= target.timeout:
            raise self._failure(target, f"{target.service} not healthy after {target.timeout:g}s")
        return False

    def _failure(self, target: Target, headline: str) -> DeployFailure:
        lines = [
            headline,
            f"  probe: {target.describe_probe()}, {target.probe.consecutive} passes in a row",
            f"  last result: {target.last}",
        ]
        if target.status is not None:
            detail = f" ({target.status.detail})" if target.status.detail else ""
            lines.append(f"  state: {target.status.describe()}{detail}")
        try:
            log = self.runtime.logs(target.service, LOG_LINES).rstrip()
        except DeployFailure as exc:
            log = f"(could not read the log: {exc.problem})"
        lines.append(f"  last {LOG_LINES} log lines of {target.service}:")
        lines.extend(f"    {line}" for line in (log.splitlines() or ["(empty)"]))
        return DeployFailure(
            "\n".join(lines),
            f"see the log above; more with: invoke stack.logs --env {self.settings.name} "
            f"--service {target.service}",
        )


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
    shown = " ".join(redact(body).split())[:BODY_CHARS]
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


def _lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _forwarded(stack: contextlib.ExitStack, host: Host, url: str) -> str:
    """A loopback URL on ``host`` as a URL on this machine (same URL on a local host)."""
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK:
        return url
    port = parts.port or (443 if parts.scheme == "https" else 80)
    local = stack.enter_context(host.forward(port))
    if local == port:
        return url
    netloc = f"127.0.0.1:{local}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def load_modules() -> None:
    """Import the HTTP client ahead of the wait (see ``Step.prepare``)."""
    import httpx  # noqa: F401


@contextlib.contextmanager
def _httpx_fetch() -> Iterator[Fetch]:
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
