"""Prove that the Celery workers work, on this release: not just that a container is up.

In order, each step bounded in time, each failure with its own message:
1. the broker answers (a TCP connect to it, then the first broker command);
2. workers answer a control ping (``limit`` = expected workers, so it returns at once);
3. enough of them answer, and none beyond them goes unnoticed: replies are collected for
   ``reply_window`` more seconds, so a stale worker of an old release is caught too;
4. every worker has the required tasks (and ``roundtrip_task``) registered;
5. the release each worker runs: a worker that registered the canary task
   (``deploytools_canary.register_canary``, one line in the app) is sent it, through a queue
   only that worker is told to consume, and it answers with the ``RELEASE_ID`` of its
   environment. A worker without it is judged by when it started: Celery's control commands
   report no process environment (``stats`` gives pid, uptime and pool; ``conf`` and ``report``
   the app's settings), so, given the time the deploy's start began, a worker that started
   before it is still the release that ran before. Without that time (``celery.verify``, an
   undo) its release is not proved, and the check says so;
6. ``roundtrip_task``, if set (an idempotent task of the app), sent to each worker the same
   way, must succeed.

The broker URL comes from the env file (``celery.broker_key``); an empty one means Celery's
server-less filesystem broker of the local environment. A loopback broker on a remote host is
reached through ``Host.forward``. celery is imported only here, when a check runs.

Bounded in time, whatever the broker does. Every broker and result-backend call waits at most
``ping_timeout`` and none is retried (``_client``), and each step of the check has a budget
(``_Watch``): connecting and pinging ``ping_timeout`` each, the registered-tasks and stats
queries ``reply_window`` + ``ping_timeout`` each, the canaries and the round trip
``canary_timeout`` each, closing ``ping_timeout``.
A step that has not ended ``MARGIN`` (3 s) after its budget fails the check, whatever blocks it
(kombu's clean-up calls after a failure, each waiting its own timeout; a lock held on a
filesystem broker's file); the step is left in its daemon thread, silent. So a broker that is
gone, or accepts connections and never answers, fails the check within ``ping_timeout`` + 3 s,
and one lost later fails it within the budget of the step it was lost in, + 3 s.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from deploytools.config import CelerySettings, EnvironmentSettings
from deploytools.errors import DeployFailure, Interrupted, OperatorError
from deploytools.hosts.base import Host
from deploytools.hosts.forward import DEFAULT_PORTS, reach
from deploytools.redact import Redactor
from deploytools.ui import Ui

FILESYSTEM = "filesystem://"
CANARY_QUEUE = "deploytools.canary."
CLIENT_POLL = 0.05  # seconds between the client's looks at a filesystem queue or result
FS_RACE_PAUSE = 0.2  # an exchange file read half-made is whole again after this


@dataclass(frozen=True)
class Rounds:
    """How long each ping round collects replies (see ``_Checks._in_rounds``)."""

    short: float  # for the first half of ping_timeout (a worker may still be booting)
    long: float  # after it (a machine this slow may be slow to reply too)


SERVER_ROUNDS = Rounds(0.25, 1.0)  # replies through Redis take milliseconds
REDIS_POLL = 0.05  # seconds: our client's BRPOP timeout on a Redis broker (see _prompt_replies)
FILESYSTEM_ROUNDS = Rounds(3.0, 3.0)  # workers poll the filesystem broker once a second
UPTIME_SLACK = 1.0  # seconds: Celery rounds a worker's uptime to whole seconds
UNPROVED = "not proved"  # a worker's release, when nothing could show it (see _Checks._started)
STARTED = "started after the start"
MARGIN = 3.0  # seconds a step of the check may run beyond its budget (see _Watch)
WATCH = 0.1  # seconds between looks at ``stopping`` while a check runs in its thread

R = TypeVar("R")


class CeleryCheckFailed(DeployFailure):
    """A failed check; ``kind`` says which (for ``--json`` and for tests)."""

    def __init__(self, kind: str, problem: str, fix: str = "") -> None:
        super().__init__(problem, fix)
        self.kind = kind


@dataclass
class CeleryReport:
    workers: list[str]
    releases: dict[str, str] = field(default_factory=dict)  # what each canary answered
    extra: list[str] = field(default_factory=list)  # answered beyond expected_workers
    seconds: float = 0.0
    # How each worker's release was shown: "canary", "started after the start" or "not proved".
    proofs: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "releases": self.releases,
            "release_proofs": self.proofs,
            "extra_workers": self.extra,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class BrokerUrls:
    broker: str
    backend: str
    transport_options: dict[str, Any]

    @property
    def filesystem(self) -> bool:
        return self.broker.startswith(FILESYSTEM)


def celery_settings(settings: EnvironmentSettings) -> CelerySettings:
    if settings.celery is None:
        raise OperatorError(
            f"environment {settings.name!r} has no celery table",
            f"add environments.{settings.name}.celery (or defaults.celery) to deploy.toml",
        )
    return settings.celery


def broker_urls(settings: EnvironmentSettings, env_values: Mapping[str, str]) -> BrokerUrls:
    """Broker and result backend as the workers see them (from the env file)."""
    conf = celery_settings(settings)
    broker = env_values.get(conf.broker_key, "").strip() or FILESYSTEM
    backend = env_values.get(conf.backend_key, "").strip()
    if not broker.startswith(FILESYSTEM):
        if not backend and urlsplit(broker).scheme not in ("redis", "rediss"):
            raise OperatorError(
                f"{conf.backend_key} is not set and the broker is not Redis",
                f"set {conf.backend_key} in {settings.env_file}: the canary needs a result backend",
            )
        return BrokerUrls(broker, backend or broker, {})
    root = Path(env_values.get(conf.fs_root_key, "").strip() or conf.fs_root_default).expanduser()
    if not root.is_absolute():
        root = settings.path(settings.app_dir) / root
    folders = {
        "data_folder_in": str(root / "queue"),
        "data_folder_out": str(root / "queue"),
        "control_folder": str(root / "control"),
        "polling_interval": CLIENT_POLL,  # our side; the worker polls at its own pace
    }
    return BrokerUrls(broker, backend or (root / "results").as_uri(), folders)


def load_modules(settings: EnvironmentSettings, env_values: Mapping[str, str]) -> None:
    """Import the Celery client, the broker's transport and the result backend's module.

    0.3-0.4 s of CPU; a deploy does it while ``up`` waits on Docker (``Step.prepare``), not
    while the services boot beside the check. Connects to nothing.
    """
    from celery.app.backends import by_url
    from celery.app.control import Control  # noqa: F401
    from kombu.transport import resolve_transport

    urls = broker_urls(settings, env_values)
    resolve_transport(urlsplit(urls.broker).scheme)
    by_url(urls.backend)


def verify_celery(
    settings: EnvironmentSettings,
    env_values: Mapping[str, str],
    release: str | None,
    ui: Ui,
    *,
    host: Host,
    clock: Callable[[], float] = time.monotonic,
    stopping: threading.Event | None = None,
    since: float | None = None,
    previous: str | None = None,
) -> CeleryReport:
    """Run the checks; ``release`` None skips the release comparison (and says so).

    ``since``: when the start of ``release`` began (``time.time()``), so that a worker with no
    canary task that started before it is caught, and named as ``previous``.

    A broker that is gone or never answers fails it within ``ping_timeout`` + 3 s, and no
    step of it outlives its budget by more than 3 s (see the module's docstring).
    ``stopping`` set (a step beside this one was interrupted) ends it at once with
    ``Interrupted``."""
    conf = celery_settings(settings)
    urls = broker_urls(settings, env_values)
    started = clock()
    if urls.filesystem and not host.local:
        raise OperatorError(
            "the filesystem Celery broker only works on this machine",
            f"set {conf.broker_key} to a Redis URL for environment {settings.name}",
        )
    voice = _Voice(ui)
    abandoned = threading.Event()  # the check's own ``stopping``: ends it at its next round
    with _reachable(urls, host, conf.ping_timeout) as reached:  # bounded by the host's timeouts
        watch = _Watch("connecting to the broker", conf.ping_timeout)
        try:
            report = _bounded(
                lambda: _check(
                    urls, reached, host, conf, _Expected(release, since, previous), voice.warn,
                    clock, watch, abandoned,
                ),
                watch,
                stopping or threading.Event(),
                lambda step, limit: _broker_failed(
                    urls, host, f"broker did not answer within {limit:g}s while {step}"
                ),
            )
        finally:
            voice.close()
            abandoned.set()
    report.seconds = clock() - started
    proved = [w for w in report.workers if report.proofs.get(w) != UNPROVED]
    on = f"on release {release}" if release else "answered"
    ui.success(
        f"celery: {len(report.workers)} worker(s) answered, tasks registered, "
        + (f"all {on}" if len(proved) == len(report.workers) else f"{len(proved)} {on}")
        + (", round trip done" if conf.roundtrip_task else "")
        + f" ({report.seconds:.2f}s)"
    )
    return report


@dataclass(frozen=True)
class _Expected:
    """What the workers must run: ``release`` (None: not compared), and for those without a
    canary task, ``since`` (when its start began) and ``previous`` (the release before)."""

    release: str | None
    since: float | None = None
    previous: str | None = None


def _check(
    urls: BrokerUrls,
    reached: BrokerUrls,
    host: Host,
    conf: CelerySettings,
    expected: _Expected,
    warn: Callable[[str], None],
    clock: Callable[[], float],
    watch: _Watch,
    stopping: threading.Event,
) -> CeleryReport:
    """The checks themselves, run in ``verify_celery``'s thread; ``reached``: ``urls`` as
    this machine reaches them (through a forwarded port for a remote loopback broker)."""
    with _client(reached, conf.ping_timeout) as app:
        try:
            if not urls.filesystem:
                _prompt_replies(app)
            rounds = FILESYSTEM_ROUNDS if urls.filesystem else SERVER_ROUNDS
            checks = _Checks(app, conf, warn, clock, rounds, stopping, watch.enter)
            try:
                return checks.run(*astuple(expected))
            except json.JSONDecodeError:
                if not urls.filesystem:
                    raise
                # kombu's filesystem transport creates an exchange file empty, then locks and
                # writes it: a reader in between (a worker that just started binds its queues)
                # sees no JSON.
                time.sleep(FS_RACE_PAUSE)
                return checks.run(*astuple(expected))
        except _broker_errors(app) as exc:
            raise _error_failure(urls, host, exc, conf.ping_timeout) from None


class _Watch:
    """The step the check is at, and when it must have ended: its budget + ``MARGIN``."""

    def __init__(self, step: str, budget: float) -> None:
        self.enter(step, budget)

    def enter(self, step: str, budget: float) -> None:
        limit = budget + MARGIN
        self.now = (step, limit, time.monotonic() + limit)  # one assignment: read whole


def _bounded(
    work: Callable[[], R],
    watch: _Watch,
    stopping: threading.Event,
    late: Callable[[str, float], BaseException],
) -> R:
    """``work()`` in a daemon thread, waited for while its current step is within its time
    (else ``late(step, limit)`` is raised) and ``stopping`` is clear (else ``Interrupted``).

    The backstop behind every broker call's own timeout. What still blocks is left behind in
    its thread: a daemon, so it never keeps the process alive.
    """
    results: list[R] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            results.append(work())
        except BaseException as exc:  # re-raised by the caller, or dropped if it gave up
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="celery check", daemon=True).start()
    while not done.wait(WATCH):
        if stopping.is_set():
            raise Interrupted("told to stop")
        step, limit, ends = watch.now
        if time.monotonic() >= ends:
            raise late(step, limit)
    if errors:
        raise errors[0]
    return results[0]


class _Voice:
    """The check's warnings, shown only while someone waits for the check: one given up at
    its deadline goes on in its thread, and must not speak into what the caller does next."""

    def __init__(self, ui: Ui) -> None:
        self._ui = ui
        self._lock = threading.Lock()
        self._open = True

    def warn(self, text: str) -> None:
        with self._lock:
            if self._open:
                self._ui.warn(text)

    def close(self) -> None:
        with self._lock:
            self._open = False


class _Checks:
    def __init__(
        self,
        app: Any,
        conf: CelerySettings,
        warn: Callable[[str], None],
        clock: Callable[[], float],
        rounds: Rounds,
        stopping: threading.Event | None = None,
        enter: Callable[[str, float], None] = lambda step, budget: None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.conf = conf
        self.warn = warn
        self.clock = clock
        self.rounds = rounds  # each longer than the broker's round trip to a worker
        self.stopping = stopping or threading.Event()
        self.enter = enter  # each step with its budget (_Watch)
        self.wall = wall  # to compare a worker's start with the deploy's (both wall clocks)

    def run(
        self, release: str | None, since: float | None = None, previous: str | None = None
    ) -> CeleryReport:
        expected = _Expected(release, since, previous)
        conf = self.conf
        self.enter("pinging the workers", conf.ping_timeout)
        pinged = self._ping()
        self.enter("asking the workers for their tasks", self._inspect_budget)
        # Each worker is told to consume a queue of its own now; the queue keeps the canary
        # until the worker listens, so the registered-tasks round trip runs meanwhile. (The
        # canaries themselves go out after it: sent before, they came back 0.3 s later.)
        consuming = self._consume(pinged)
        try:
            registered = self._registered(pinged)
            workers = sorted(registered)
            extra = [w for w in workers if w not in pinged]
            if extra:
                self.warn(
                    f"{len(workers)} workers answered, {self.conf.expected_workers} expected: "
                    + ", ".join(workers)
                )
                consuming += self._consume(extra)
            self._tasks(registered)
            canaried = [w for w in workers if conf.canary_task in registered[w]]
            proofs = dict.fromkeys(canaried, "canary")
            others = [w for w in workers if w not in canaried]
            if others:
                self.enter("asking the workers when they started", self._inspect_budget)
                proofs |= self._started(others, expected)
            self.enter("waiting for the canary tasks", conf.canary_timeout)
            releases = self._canaries(canaried, expected.release) if canaried else {}
            if conf.roundtrip_task:
                self.enter(f"waiting for {conf.roundtrip_task}", conf.canary_timeout)
                self._round_trips(workers)
            self.enter("closing", conf.ping_timeout)
        finally:
            for worker in consuming:
                self.app.control.cancel_consumer(_queue(worker), destination=[worker], reply=False)
        return CeleryReport(workers, releases, extra, proofs=proofs)

    @property
    def _inspect_budget(self) -> float:
        return self.conf.reply_window + self.conf.ping_timeout

    def _consume(self, workers: list[str]) -> list[str]:
        for worker in workers:
            self.app.control.add_consumer(_queue(worker), destination=[worker], reply=False)
        return list(workers)

    def _ping(self) -> list[str]:
        """Ping in rounds until the expected workers answered or ``ping_timeout`` is spent.

        A broadcast reaches only the workers listening when it is sent (Redis pub/sub keeps
        nothing), so a worker that finishes booting meanwhile answers the next round.
        """
        conf = self.conf

        def ping(budget: float) -> dict[str, Any]:
            replies = self.app.control.ping(timeout=budget, limit=conf.expected_workers)
            return {name: reply[name] for reply in replies or [] for name in reply}

        names = sorted(self._in_rounds(ping, lambda got: len(got) >= conf.expected_workers))
        if not names:
            raise CeleryCheckFailed(
                "no-worker",
                f"no worker answering: no Celery worker answered within {conf.ping_timeout:g}s",
                "start the worker (invoke stack.up) and look at its log (invoke stack.logs)",
            )
        return names

    def _in_rounds(
        self, ask: Callable[[float], dict[str, Any]], enough: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        """Ask in rounds until ``enough`` or ``ping_timeout`` is spent.

        A deploy checks the workers while they boot, and one that starts listening just after
        a broadcast answers only the next: short rounds first, so it is not kept waiting. A
        reply that comes after its round is over is dropped, so once half the timeout has
        passed the rounds are long, and a loaded machine's slow replies still count.
        """
        started = self.clock()
        deadline = started + self.conf.ping_timeout
        found: dict[str, Any] = {}
        while True:
            if self.stopping.is_set():
                raise Interrupted("told to stop")
            late = self.clock() - started >= self.conf.ping_timeout / 2
            length = self.rounds.long if late else self.rounds.short
            found.update(ask(min(length, deadline - self.clock())))
            if enough(found) or self.clock() >= deadline - 0.05:
                return found

    def _registered(self, pinged: list[str]) -> dict[str, list[str]]:
        """Registered tasks of every worker that answers, including any beyond the expected."""
        conf = self.conf
        window = max(conf.reply_window, 0.05)
        found: dict[str, list[str]] = dict(
            self.app.control.inspect(timeout=window).registered() or {}
        )
        late = [w for w in pinged if w not in found]
        if late:
            found.update(self._ask(late, "registered", "registered-tasks"))
        answered = sorted(set(found) | set(pinged))
        if len(answered) < conf.expected_workers:
            raise CeleryCheckFailed(
                "too-few-workers",
                f"too few workers: {len(answered)} of {conf.expected_workers} expected answered "
                f"({', '.join(answered)})",
                "start the missing workers or lower celery.expected_workers",
            )
        return {w: [t.split(" ")[0] for t in found[w]] for w in answered}

    def _ask(self, workers: list[str], query: str, what: str) -> dict[str, Any]:
        """``inspect().QUERY()`` of ``workers`` in rounds until each answered (a broadcast can
        be missed like a ping); one that never does fails the check."""

        def ask(budget: float) -> dict[str, Any]:
            inspect = self.app.control.inspect(
                destination=workers, limit=len(workers), timeout=budget
            )
            return dict(getattr(inspect, query)() or {})

        found = self._in_rounds(ask, lambda got: all(w in got for w in workers))
        silent = [w for w in workers if w not in found]
        if silent:
            raise CeleryCheckFailed(
                "worker-silent",
                f"{', '.join(silent)} answered the ping but not the {what} query "
                f"within {self.conf.ping_timeout:g}s",
                "look at the worker's log (overloaded? shutting down?); retry celery.verify",
            )
        return found

    def _tasks(self, registered: dict[str, list[str]]) -> None:
        roundtrip = [self.conf.roundtrip_task] if self.conf.roundtrip_task else []
        required = list(dict.fromkeys([*self.conf.required_tasks, *roundtrip]))
        missing = {w: [t for t in required if t not in tasks] for w, tasks in registered.items()}
        missing = {w: ts for w, ts in missing.items() if ts}
        if missing:
            listed = "; ".join(f"{w} lacks {', '.join(ts)}" for w, ts in missing.items())
            raise CeleryCheckFailed(
                "task-missing",
                f"task missing: {listed}",
                "deploy the code that defines these tasks to every worker, or fix "
                "celery.required_tasks and celery.roundtrip_task",
            )

    def _started(self, workers: list[str], expected: _Expected) -> dict[str, str]:
        """Workers without the canary task: each must have started after ``expected.since``
        (Celery's ``stats``: ``uptime``, whole seconds, by the worker's wall clock)."""
        found = self._ask(workers, "stats", "stats")
        now = self.wall()
        began = {w: now - float(found[w].get("uptime", 0)) for w in workers}
        if expected.release is None or expected.since is None:
            self.warn(
                f"{', '.join(workers)}: release not proved (no {self.conf.canary_task} task "
                "registered, and no deploy start to compare the worker's start with); "
                + self._canary_fix
            )
            return dict.fromkeys(workers, UNPROVED)
        since = expected.since
        old = {w: since - t for w, t in began.items() if t < since - UPTIME_SLACK}
        if old:
            before = repr(expected.previous) if expected.previous else "an earlier release"
            listed = ", ".join(f"{w} started {ago:.0f}s before it" for w, ago in old.items())
            raise CeleryCheckFailed(
                "wrong-release",
                f"wrong release: expected {expected.release!r}, but a worker that started before "
                f"the start of {expected.release!r} still runs {before}: {listed}",
                "an old worker is still running: restart or remove it (invoke stack.up)",
            )
        return dict.fromkeys(workers, STARTED)

    @property
    def _canary_fix(self) -> str:
        where = f" in {self.conf.app}" if self.conf.app else ""
        return (
            "to prove it, add `from deploytools_canary import register_canary; "
            f"register_canary(app)`{where}"
        )

    def _canaries(self, workers: list[str], release: str | None) -> dict[str, str]:
        answers = self._send_each(self.conf.canary_task, workers, "canary task")
        releases = {
            w: str(a.get("release") if isinstance(a, dict) else a) for w, a in answers.items()
        }
        wrong = {w: r for w, r in releases.items() if release is not None and r != release}
        if wrong:
            listed = ", ".join(f"{w} runs {r!r}" for w, r in wrong.items())
            raise CeleryCheckFailed(
                "wrong-release",
                f"wrong release: expected {release!r}, but {listed}",
                "an old worker is still running: restart or remove it (invoke stack.up)",
            )
        if release is None:
            self.warn("no release given: the canary answered but its release was not compared")
        return releases

    def _round_trips(self, workers: list[str]) -> None:
        conf = self.conf
        assert conf.roundtrip_task is not None
        self._send_each(
            conf.roundtrip_task, workers, "round-trip task", conf.roundtrip_args,
            conf.roundtrip_kwargs,
        )

    def _send_each(
        self,
        task: str,
        workers: list[str],
        what: str,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``task`` through each worker's own queue; every answer within ``canary_timeout``."""
        from celery.exceptions import TimeoutError as CeleryTimeout

        conf = self.conf
        kind = what.split()[0]  # "canary", "round-trip"
        sent = {
            w: self.app.send_task(
                task, args=args, kwargs=kwargs, queue=_queue(w), expires=conf.canary_timeout,
                retry=False,
            )
            for w in workers
        }
        deadline = self.clock() + conf.canary_timeout
        answers: dict[str, Any] = {}
        silent: list[str] = []
        for worker, result in sent.items():
            try:
                answers[worker] = result.get(
                    timeout=max(0.05, deadline - self.clock()), interval=CLIENT_POLL, propagate=True
                )
            except CeleryTimeout:
                silent.append(worker)
            except Exception as exc:  # the task raised on the worker: its exception, re-raised
                raise CeleryCheckFailed(
                    f"{kind}-failed",
                    f"the {what} {task} failed on {worker}: {type(exc).__name__}: {exc}",
                    "look at the worker's log",
                ) from None
            finally:
                result.forget()
        if silent:
            raise CeleryCheckFailed(
                f"{kind}-timeout",
                f"the {what} got no answer within {conf.canary_timeout:g}s from "
                f"{', '.join(silent)} (busy with long tasks, or not consuming?)",
                "look at the worker's log; raise celery.canary_timeout if tasks run long",
            )
        return answers


def _queue(worker: str) -> str:
    return CANARY_QUEUE + re.sub(r"[^A-Za-z0-9._-]", "_", worker)


@contextlib.contextmanager
def _reachable(urls: BrokerUrls, host: Host, timeout: float) -> Iterator[BrokerUrls]:
    """Forward a remote loopback broker, then check that something listens there."""
    if urls.filesystem:
        # The folders are the broker: made here too, since a worker just started may not have
        # made them yet (the ping then waits for it like for any broker).
        folders = [urls.transport_options[k] for k in ("data_folder_in", "control_folder")]
        try:
            for folder in (*folders, urlsplit(urls.backend).path):
                Path(folder).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CeleryCheckFailed(
                "broker-unreachable",
                f"broker unreachable: cannot use the filesystem broker folders: {exc}",
                "check CELERY_FS_ROOT and its permissions",
            ) from None
        yield urls
        return
    with contextlib.ExitStack() as stack:
        broker = reach(stack, host, urls.broker)
        backend = reach(stack, host, urls.backend)
        parts = urlsplit(broker)
        address = (parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS.get(parts.scheme, 0))
        try:
            socket.create_connection(address, timeout=timeout).close()
        except OSError as exc:
            raise _broker_failed(urls, host, "broker unreachable", str(exc)) from None
        yield BrokerUrls(broker, backend, urls.transport_options)


@contextlib.contextmanager
def _client(urls: BrokerUrls, timeout: float) -> Iterator[Any]:
    """A bare Celery client app: no task code of the application needed, JSON only.

    Every call to the broker or the result backend waits ``timeout`` seconds at most and is
    not retried: by default redis-py waits on a silent socket forever, and kombu retries a
    lost connection without end (``_one_try``).
    """
    from celery import Celery

    app = Celery(
        "deploytools-verify", broker=urls.broker, backend=urls.backend, set_as_current=False
    )
    app.amqp.Connection = _one_try(app.amqp.Connection)
    bounds = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "max_retries": 0}
    app.conf.update(
        broker_connection_retry=False,
        broker_connection_max_retries=0,
        broker_connection_timeout=timeout,
        broker_transport_options={**bounds, **urls.transport_options},
        redis_socket_timeout=timeout,
        redis_socket_connect_timeout=timeout,
        result_backend_transport_options={"retry_policy": {"max_retries": 0}},
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
    )
    try:
        yield app
    finally:
        # Best effort: what the check found stands, and closing can fail where the check did
        # not need it to work (a broker lost at the end; rpc://, whose result consumer cannot
        # stop when no result was awaited).
        with contextlib.suppress(Exception):
            _close_result_backend(app.backend)
        with contextlib.suppress(Exception):
            app.close()


def _one_try(connection: Any) -> Any:
    """kombu's ``Connection`` with no retry loop: control commands publish with
    ``retry=True`` and no limit, which re-connects to a broker that is gone every second,
    forever. Here the first failure is the check's failure."""

    class OneTry(connection):  # type: ignore[misc]  # kombu has no type hints
        def ensure(
            self, obj: Any, fun: Any, errback: Any = None, max_retries: Any = None, *args: Any,
            **opts: Any,
        ) -> Any:
            return super().ensure(obj, fun, errback, 0, *args, **opts)

    return OneTry


def _prompt_replies(app: Any) -> None:
    """On Redis, let a ping round end on time and see a reply when it comes.

    kombu waits for control replies with BRPOP and a server-side timeout of 1 s, and reads out
    a pending BRPOP before it goes on: a round asked to last 0.25 s ran on to that second, and
    a worker ready during it was seen ~1.1 s later (against ~0.3 s with a 0.05 s BRPOP).
    Redis takes a fractional timeout since 6.0; an older server, or one that refuses INFO,
    keeps kombu's default. A broker that does not answer fails here (``_broker_errors``).
    """
    with app.connection_for_read() as conn:
        if conn.transport.driver_type != "redis":
            return
        from redis.exceptions import ResponseError

        try:
            info = conn.default_channel.client.info("server")
        except ResponseError:  # INFO renamed away or denied by an ACL: the ping still works
            return
    major = str(info.get("redis_version", "")).split(".")[0]
    if major.isdigit() and int(major) >= 6:
        options = app.conf.broker_transport_options
        app.conf.broker_transport_options = {**options, "polling_interval": REDIS_POLL}


def _broker_errors(app: Any) -> tuple[type[BaseException], ...]:
    """What the broker's and the result backend's libraries raise when their server fails."""
    from kombu.exceptions import KombuError

    conn = app.connection_for_write()
    backend = app.backend
    listed = (
        *conn.connection_errors,
        *conn.channel_errors,
        *getattr(backend, "connection_errors", ()),
        *getattr(backend, "channel_errors", ()),
    )
    # kombu lists KeyError among Redis's errors: one of ours would be a bug, not the broker.
    own = tuple(e for e in listed if e.__module__ != "builtins")
    return (KombuError, OSError, *own)  # kombu re-raises them as its OperationalError


def _broker_failed(
    urls: BrokerUrls, host: Host, problem: str, detail: str = ""
) -> CeleryCheckFailed:
    """``problem``, the broker as the operator wrote it (password masked), then ``detail``."""
    text = f"{problem}: {_where(urls)} (from {host.name})" + (f": {detail}" if detail else "")
    return CeleryCheckFailed(
        "broker-unreachable",
        text,
        "start the broker or let it run again (not stopped, frozen, out of memory or disk), "
        "or fix the broker URL in the env file",
    )


def _error_failure(
    urls: BrokerUrls, host: Host, error: BaseException, timeout: float
) -> CeleryCheckFailed:
    """What a broker library raised, said plainly: a timeout, or the library's own words."""
    from kombu.exceptions import VersionMismatch
    from redis.exceptions import TimeoutError as RedisTimeout

    cause: BaseException | None = error
    while cause is not None:  # kombu wraps redis-py's error, which wraps the socket's
        if isinstance(cause, (TimeoutError, RedisTimeout)):
            return _broker_failed(urls, host, f"broker did not answer within {timeout:g}s")
        if isinstance(cause, (VersionMismatch, ImportError)):
            return client_mismatch(cause)
        cause = cause.__cause__ or cause.__context__
    text = str(error).strip()
    said = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return _broker_failed(urls, host, "broker error", said)


def client_mismatch(error: BaseException) -> CeleryCheckFailed:
    """kombu refusing the broker library it found (or finding none): a fault of the
    environment deploytools runs in, not of the broker, its URL or the app's workers."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            return f"no {name}"

    found = ", ".join(installed(n) for n in ("celery", "kombu", "redis"))
    return CeleryCheckFailed(
        "client-mismatch",
        f"deploytools' Celery client and its broker library do not match ({found}, in "
        f"{sys.prefix}): {type(error).__name__}: {str(error).strip()}",
        "install versions that match in deploytools' own environment (pipx reinstall "
        "deploytools, or pip install -U deploytools there); the broker, its URL and the app's "
        "workers are not at fault",
    )


def _where(urls: BrokerUrls) -> str:
    """The broker as the operator wrote it, password masked (its folders' root for the
    filesystem broker)."""
    if urls.filesystem:
        return f"{FILESYSTEM} in {Path(urls.transport_options['control_folder']).parent}"
    return Redactor()(urls.broker)


def _close_result_backend(backend: Any) -> None:
    """``app.close`` leaves the result backend's connections (Redis pub/sub) open: close them."""
    consumer = getattr(backend, "result_consumer", None)
    if consumer is not None:
        consumer.stop()
    close = getattr(getattr(backend, "client", None), "close", None)
    if callable(close):
        close()
