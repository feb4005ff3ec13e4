"""Watching a flag stage while it soaks: its guards and the health of the services, on every
host, every ``interval`` seconds for the stage's ``soak``; the first failure ends the watch.

``planned`` works out what to watch before the stage is applied (a guard on a service the
environment lacks, or on one without a probe URL, is an operator error naming
``config/flags.toml`` and the key: nothing has changed yet). ``watch`` then looks, and raises
``GuardFailed`` at the first guard out of its bounds, unreadable or unanswered, or the first
service not healthy; ``check_once`` looks once (``flags.advance``: do the current stage's
guards hold?). Any ``DeployFailure`` out of either means the stage did not hold.

A guard reads ``path`` at its service's probe URL (placeholders filled from the host's env
values), so a guard needs no address of its own; a loopback URL is reached through the host
(``hosts/forward.py``), as the health probes are. The health check is the probes' own, once
per round (``probes.health.check_now``), not a wait: the stack is up and must stay so.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from deploytools.config import config_problems
from deploytools.errors import DeployFailure
from deploytools.flags import DEFAULT_PLAN, readings
from deploytools.flags.plan import Guard, Stage
from deploytools.hosts.forward import reach
from deploytools.probes.health import (
    Fetch,
    ProbeError,
    Target,
    check_now,
    excerpt,
    http_fetch,
    probe_url,
    targets_for,
)
from deploytools.runtime.base import log_tail

if TYPE_CHECKING:
    from deploytools.hosts.base import Host
    from deploytools.runtime.base import Runtime
    from deploytools.site import Site
    from deploytools.ui import Ui

INTERVAL = 5.0  # seconds between two rounds of checks while a stage soaks
PROGRESS_EVERY = 30.0  # seconds between two lines saying the stage still holds
FIX = (
    "a guard's service must be one of the environment's, with a probe url "
    "(config/deploy.toml): correct the guard or the service's probe"
)


@dataclass(frozen=True)
class GuardOn:
    """One guard of a stage on one host: the URL it reads there."""

    key: str  # where the plan has it: stages.week2.guards.0
    guard: Guard
    host: str
    url: str  # the service's probe URL on that host with the guard's path
    timeout: float  # the probe's request timeout

    def describe(self) -> str:
        g = self.guard
        return f"{g.service} GET {g.path}: {readings.name(g)} {readings.bounds(g)}"


@dataclass(frozen=True)
class Watched:
    """What watching a stage looks at: its guards on every host that runs their service, and
    the health of every service on every host of the site."""

    site: Site
    stage: str
    soak: float
    guards: tuple[GuardOn, ...]

    @property
    def hosts(self) -> list[str]:
        return self.site.host_names

    def describe(self, interval: float = INTERVAL) -> list[str]:
        """What the watch does (a dry run's plan, and the watch's first lines)."""
        how = f"for {self.soak:g} s, every {interval:g} s," if self.soak else "once"
        hosts = ", ".join(self.hosts)
        lines = [f"watch stage {self.stage} {how} on {hosts}: the health of every service"]
        for key, on in _by_key(self.guards).items():
            lines.append(f"  {key}: {on[0].describe()} (on {', '.join(g.host for g in on)})")
        return lines


@dataclass(frozen=True)
class Breach:
    """What failed, where, and when in the soak."""

    host: str
    service: str
    guard: str | None  # its key in the plan; None: the service's health
    reason: str
    seconds: float
    value: float | None = None
    bound: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "service": self.service,
            "guard": self.guard,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "value": self.value,
            "bound": self.bound,
        }


class GuardFailed(DeployFailure):
    """A stage did not hold: ``breach`` says where and why (the caller restores the flags)."""

    def __init__(self, watched: Watched, breach: Breach, details: list[str]) -> None:
        when = f", {breach.seconds:.1f} s into its {watched.soak:g} s soak" if watched.soak else ""
        what = f"guard {breach.guard}" if breach.guard else f"health of {breach.service}"
        problem = f"stage {watched.stage}: {what} failed on {breach.host}{when}: {breach.reason}"
        settings = watched.site.settings
        hosts = f" --hosts {breach.host}" if settings.hosts else ""
        super().__init__(
            "\n".join([problem, *details]),
            f"see why on {breach.host}: invoke stack.logs --env {settings.name} "
            f"--service {breach.service}{hosts}",
        )
        self.breach = breach


@dataclass(frozen=True)
class Soaked:
    """A stage that held: how long, how many rounds, and each guard's value nearest to its
    bound over the whole watch (with the host it was seen on)."""

    stage: str
    seconds: float
    rounds: int
    hosts: list[str]
    nearest: dict[str, tuple[float, str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "seconds": round(self.seconds, 3),
            "rounds": self.rounds,
            "hosts": self.hosts,
            "nearest": {k: {"value": v, "host": h} for k, (v, h) in self.nearest.items()},
        }


def planned(site: Site, stage_name: str, stage: Stage, plan_file: str = DEFAULT_PLAN) -> Watched:
    """Every guard of ``stage`` on every host that runs its service, each problem of the plan
    named by its key before anything changes."""
    known = site.runtime(site.primary).services()
    problems, found = [], []
    for index, guard in enumerate(stage.guards):
        key = f"stages.{stage_name}.guards.{index}"
        problem = _service_problem(site, guard.service, known)
        if problem:
            problems.append(f"{key}.service: {problem}")
        else:
            found += _on_hosts(site, key, guard)
    if problems:
        raise config_problems(plan_file, problems, FIX)
    return Watched(site, stage_name, stage.soak, tuple(found))


def check_once(watched: Watched, ui: Ui, *, fetch: Fetch | None = None) -> Soaked:
    """One round of checks, whatever the stage's soak: do its guards hold now?"""
    return watch(replace(watched, soak=0), ui, fetch=fetch)


def watch(
    watched: Watched,
    ui: Ui,
    *,
    interval: float = INTERVAL,
    fetch: Fetch | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Soaked:
    """Check every ``interval`` seconds until the soak is over (a last round at its end; a
    soak of 0 is one round); raise ``GuardFailed`` at the first failure."""
    with contextlib.ExitStack() as stack:
        fetch = fetch or stack.enter_context(http_fetch())
        looks = [_Look.open(watched, name, stack) for name in watched.hosts]
        for line in watched.describe(interval):
            ui.info(line)
        round_ = _Round(watched, fetch, ui.redact, clock)
        said = round_.started
        while True:
            for look in looks:
                round_.check(look)
            round_.count += 1
            now = clock()
            if now - round_.started >= watched.soak - 1e-9:
                break
            if now - said >= PROGRESS_EVERY:
                ui.info(_progress(watched, round_, now - round_.started))
                said = now
            due = round_.started + min(round_.count * interval, watched.soak)
            sleep(max(0.0, due - clock()))
    soaked = Soaked(
        watched.stage, clock() - round_.started, round_.count, watched.hosts, round_.nearest
    )
    how = f"held for {watched.soak:g} s ({soaked.rounds} rounds)" if watched.soak else "holds"
    ui.success(
        f"stage {watched.stage} {how} on {', '.join(watched.hosts)}: every service healthy"
        + (", every guard within its bounds" if watched.guards else "")
    )
    return soaked


def _service_problem(site: Site, service: str, known: list[str]) -> str | None:
    settings = site.settings
    if service not in known:
        return (
            f"environment {settings.name} has no service {service!r} "
            f"(its services: {', '.join(known) or 'none'})"
        )
    if not settings.services.get(service) or not settings.services[service].probe.url:
        return (
            f"service {service} of environment {settings.name} has no probe url "
            f"(environments.{settings.name}.services.{service}.probe.url): a guard reads its "
            "number from that URL's host and port"
        )
    return None


def _on_hosts(site: Site, key: str, guard: Guard) -> list[GuardOn]:
    settings = site.settings
    runs = {h.name for h in settings.service_hosts(guard.service)}
    names = [n for n in site.host_names if not settings.hosts or n in runs]
    conf = settings.services[guard.service].probe
    found = []
    for name in names:
        base = probe_url(settings, guard.service, site.values_for(name))
        assert base is not None  # _service_problem saw it
        parts = urlsplit(base)
        path, _, query = guard.path.partition("?")
        url = urlunsplit((parts.scheme, parts.netloc, path, query, ""))
        found.append(GuardOn(key, guard, name, url, conf.request_timeout))
    return found


def _by_key(guards: tuple[GuardOn, ...]) -> dict[str, list[GuardOn]]:
    found: dict[str, list[GuardOn]] = {}
    for on in guards:
        found.setdefault(on.key, []).append(on)
    return found


@dataclass
class _Look:
    """One host's checks, its loopback URLs reached for the whole watch."""

    host: str
    runtime: Runtime
    targets: list[Target]  # the health probes of the services it runs
    guards: list[tuple[GuardOn, str]]  # with the URL this machine fetches

    @classmethod
    def open(cls, watched: Watched, name: str, stack: contextlib.ExitStack) -> _Look:
        site, settings = watched.site, watched.site.settings
        host = site.host(name)
        runtime = site.runtime(host)
        services = settings.services_on(name, runtime.services())  # None: all of them
        targets = []  # [] when its roles give it no service
        if services != []:
            targets = targets_for(settings, runtime, site.values_for(name), services or ())
        reached = _Reached(stack, host)
        for target in targets:
            if target.url:
                target.fetch_url = reached(target.url)
        guards = [(on, reached(on.url)) for on in watched.guards if on.host == name]
        return cls(name, runtime, targets, guards)


class _Reached:
    """A host's loopback ports forwarded once each, however many URLs name them."""

    def __init__(self, stack: contextlib.ExitStack, host: Host) -> None:
        self.stack = stack
        self.host = host
        self.netlocs: dict[tuple[str, str], str] = {}

    def __call__(self, url: str) -> str:
        parts = urlsplit(url)
        where = (parts.scheme, parts.netloc)
        if where not in self.netlocs:
            self.netlocs[where] = urlsplit(reach(self.stack, self.host, url)).netloc
        return urlunsplit(parts._replace(netloc=self.netlocs[where]))


class _Round:
    """The checks of one watch: each host's health, then its guards (one GET per URL a
    round), the values nearest to their bounds so far."""

    def __init__(
        self,
        watched: Watched,
        fetch: Fetch,
        redact: Callable[[str], str],
        clock: Callable[[], float],
    ) -> None:
        self.watched = watched
        self.fetch = fetch
        self.redact = redact
        self.clock = clock
        self.started = clock()
        self.count = 0
        self.nearest: dict[str, tuple[float, str]] = {}

    def check(self, look: _Look) -> None:
        failed = check_now(look.targets, look.runtime, self.fetch, self.redact)
        if failed is not None:
            service, reason = failed
            breach = self._breach(look.host, service, None, reason)
            raise GuardFailed(self.watched, breach, log_tail(look.runtime, service))
        answers: dict[str, tuple[int, str] | str] = {}
        for on, url in look.guards:
            if url not in answers:
                answers[url] = self._get(url, on.timeout)
            self._judge(on, answers[url])

    def _get(self, url: str, timeout: float) -> tuple[int, str] | str:
        try:
            return self.fetch(url, timeout)
        except ProbeError as exc:
            return f"no answer ({exc})"

    def _judge(self, on: GuardOn, answer: tuple[int, str] | str) -> None:
        guard, what = on.guard, f"{on.guard.service} GET {on.guard.path}"
        if isinstance(answer, str):
            raise self._failed(on, f"{what}: {answer}")
        code, body = answer
        if not 200 <= code < 300:
            raise self._failed(on, f"{what}: HTTP {code}: {excerpt(body, self.redact)}")
        try:
            value = readings.number(guard, body)
        except readings.Unreadable as exc:
            raise self._failed(on, f"{what}: {exc}") from None
        out = readings.outside(guard, value)
        if out is not None:
            said = f"{what}: {readings.name(guard)} is {value:g}, {out}"
            raise self._failed(on, said, value, readings.bounds(guard))
        near = self.nearest.get(on.key)
        if near is None or readings.margin(guard, value) < readings.margin(guard, near[0]):
            self.nearest[on.key] = (value, on.host)

    def _failed(
        self, on: GuardOn, reason: str, value: float | None = None, bound: str | None = None
    ) -> GuardFailed:
        breach = self._breach(on.host, on.guard.service, on.key, reason, value, bound)
        return GuardFailed(self.watched, breach, [f"  guard: {on.describe()}"])

    def _breach(
        self,
        host: str,
        service: str,
        guard: str | None,
        reason: str,
        value: float | None = None,
        bound: str | None = None,
    ) -> Breach:
        return Breach(host, service, guard, reason, self.clock() - self.started, value, bound)


def _progress(watched: Watched, round_: _Round, elapsed: float) -> str:
    left = max(0.0, watched.soak - elapsed)
    line = f"stage {watched.stage} holds after {elapsed:.0f} s, {left:.0f} s left"
    nearest = [
        f"{readings.name(on[0].guard)} {round_.nearest[key][0]:g} on {round_.nearest[key][1]}"
        for key, on in _by_key(watched.guards).items()
        if key in round_.nearest
    ]
    return line + (f" (nearest to their bounds: {', '.join(nearest)})" if nearest else "")
