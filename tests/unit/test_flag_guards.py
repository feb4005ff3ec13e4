"""A stage's guards: reading their numbers (JSON fields, Prometheus samples), their bounds, the
plan's bad guards, and the watch's rounds - on in-memory hosts, a scripted runtime and fetch, and
a clock that only moves when slept on."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from deploytools.config import EnvironmentSettings
from deploytools.errors import OperatorError
from deploytools.flags import readings
from deploytools.flags.guards import GuardFailed, Watched, check_once, planned, watch
from deploytools.flags.plan import Guard, Stage
from deploytools.hosts.base import Host
from deploytools.probes.health import ProbeError
from deploytools.runtime.base import Runtime, ServiceStatus
from deploytools.site import Site
from deploytools.testing import Clock, MemoryHost, settings_for
from deploytools.ui import Ui
from tests.support.fakeruntime import FakeRuntime, running
from tests.support.guardapp import ERRORS, P95

METRICS = """\
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200"} 990
http_requests_total{code="500"} 10
# TYPE http_request_errors_ratio gauge
http_request_errors_ratio 0.004
# TYPE http_request_duration_seconds summary
http_request_duration_seconds{quantile="0.5"} 0.08
http_request_duration_seconds{quantile="0.95"} 0.31
http_request_duration_seconds_sum 93.0
http_request_duration_seconds_count 1000
# TYPE queue_wait_seconds histogram
queue_wait_seconds_bucket{le="0.1"} 7
queue_wait_seconds_bucket{le="+Inf"} 9
queue_wait_seconds_sum 1.5
queue_wait_seconds_count 9
"""


def guard(**keys: Any) -> Guard:
    return Guard.model_validate({"path": "/metrics", "max": 1, **keys})


# -- reading a number ----------------------------------------------------------------------------


def test_a_json_field_is_found_by_its_dotted_path() -> None:
    body = json.dumps({"errors": {"rate": 0.02, "by_host": [{"rate": 3}]}, "ok": True})
    assert readings.json_number(body, "errors.rate") == 0.02
    assert readings.json_number(body, "errors.by_host.0.rate") == 3.0


@pytest.mark.parametrize(
    ("body", "dotted", "said"),
    [
        ('{"errors": {"count": 2}}', "errors.rate",
         "no field errors.rate in the JSON answer (errors has count)"),
        ('{"a": 1, "b": 2}', "errors.rate",
         "no field errors.rate in the JSON answer (the answer has a, b)"),
        ('{"errors": 5}', "errors.rate", "no field errors.rate in the JSON answer (errors is 5)"),
        ('{"rate": "0.5"}', "rate", 'rate is "0.5", not a number'),
        ('{"rate": true}', "rate", "rate is true, not a number"),
        ('{"rate": null}', "rate", "rate is null, not a number"),
        ('{"rate": NaN}', "rate", "rate is NaN, not a number"),
        ("<html>oops</html>", "rate", "the answer is not JSON"),
    ],
)  # fmt: skip
def test_a_json_field_that_is_not_a_number_there_says_what_is(
    body: str, dotted: str, said: str
) -> None:
    with pytest.raises(readings.Unreadable) as caught:
        readings.json_number(body, dotted)
    assert str(caught.value) == said


def test_a_metric_sample_is_found_by_name_and_labels() -> None:
    p95 = readings.metric_number(METRICS, "http_request_duration_seconds", {"quantile": "0.95"})
    assert p95 == 0.31
    assert readings.metric_number(METRICS, "http_request_errors_ratio", {}) == 0.004
    assert readings.metric_number(METRICS, "queue_wait_seconds_bucket", {"le": "0.1"}) == 7
    assert readings.metric_number(METRICS, "queue_wait_seconds_count", {}) == 9


def test_a_counter_is_found_by_its_family_name_or_its_total() -> None:
    assert readings.metric_number(METRICS, "http_requests", {"code": "500"}) == 10
    assert readings.metric_number(METRICS, "http_requests_total", {"code": "500"}) == 10


@pytest.mark.parametrize(
    ("metric", "labels", "said"),
    [
        ("http_errors", {},
         "no metric http_errors in the answer (its metrics: http_request_duration_seconds, "
         "http_request_duration_seconds_count, http_request_duration_seconds_sum, "
         "http_request_errors_ratio, http_requests_total, queue_wait_seconds_bucket, "
         "queue_wait_seconds_count, queue_wait_seconds_sum)"),
        ("http_request_duration_seconds", {"quantile": "0.99"},
         'no sample http_request_duration_seconds{quantile="0.99"} in the answer (its samples: '
         'http_request_duration_seconds{quantile="0.5"} 0.08, '
         'http_request_duration_seconds{quantile="0.95"} 0.31)'),
        ("http_request_duration_seconds", {},
         '2 samples match http_request_duration_seconds '
         '(http_request_duration_seconds{quantile="0.5"} 0.08, '
         'http_request_duration_seconds{quantile="0.95"} 0.31): add labels to pick one'),
    ],
)  # fmt: skip
def test_no_sample_or_several_say_what_was_there(
    metric: str, labels: dict[str, str], said: str
) -> None:
    with pytest.raises(readings.Unreadable) as caught:
        readings.metric_number(METRICS, metric, labels)
    assert str(caught.value) == said


def test_a_nan_sample_or_a_page_that_is_not_metrics_is_unreadable() -> None:
    with pytest.raises(readings.Unreadable, match=r"^up is NaN, not a number$"):
        readings.metric_number("up NaN\n", "up", {})
    with pytest.raises(readings.Unreadable, match=r"^the answer is not Prometheus text \("):
        readings.metric_number("<html><body>Not found</body></html>\n", "up", {})


def test_a_long_list_of_what_was_there_is_cut() -> None:
    body = "".join(f"m{i:02d} 1\n" for i in range(20))
    with pytest.raises(readings.Unreadable) as caught:
        readings.metric_number(body, "x", {})
    assert str(caught.value).endswith("m10, m11 and 8 more)")


@pytest.mark.parametrize(
    ("keys", "value", "out", "bounds"),
    [
        ({"max": 0.01}, 0.01, None, "<= 0.01"),
        ({"max": 0.01}, 0.0101, "above its max 0.01", "<= 0.01"),
        ({"min": 10, "max": None}, 9.5, "below its min 10", ">= 10"),
        ({"min": 1, "max": 5}, 1, None, "between 1 and 5"),
        ({"min": 1, "max": 5}, 5.5, "above its max 5", "between 1 and 5"),
    ],
)
def test_bounds_hold_at_the_bound_and_break_past_it(
    keys: dict[str, Any], value: float, out: str | None, bounds: str
) -> None:
    g = guard(field="rate", **keys)
    assert readings.outside(g, value) == out
    assert readings.bounds(g) == bounds


# -- the plan's guards, checked before anything changes -----------------------------------------


class FakeSite(Site):
    """A site of in-memory hosts whose runtimes a test scripts."""

    def __init__(self, settings: EnvironmentSettings, ui: Ui, runtimes: dict[str, Any]) -> None:
        self.made: dict[str, ForwardingHost] = {}
        super().__init__(settings, ui, control=MemoryHost("here", local=True), connect=self._make)
        self.runtimes = runtimes

    def _make(self, conf: Any) -> Host:
        return self.made.setdefault(conf.name, ForwardingHost(conf.name))

    def runtime(self, host: Host) -> Runtime:
        found: Runtime = self.runtimes[host.name]
        return found


class ForwardingHost(MemoryHost):
    """A remote host whose loopback ports are forwarded to local port 40000 + the port."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.forwarded: list[int] = []

    @contextmanager
    def forward(self, remote_port: int) -> Iterator[int]:
        self.forwarded.append(remote_port)
        yield 40000 + remote_port % 1000


SERVICES: dict[str, Any] = {
    "backend": {"command": ["x"], "probe": {"url": "http://127.0.0.1:{PORT}/health?deep=1"}},
    "worker": {"command": ["y"]},
}
HOSTS: list[dict[str, Any]] = [
    {"name": "web-1", "address": "10.0.0.1", "primary": True, "roles": ["web", "jobs"]},
    {"name": "web-2", "address": "10.0.0.2", "roles": ["web"], "env": {"PORT": "8002"}},
    {"name": "jobs-1", "address": "10.0.0.3", "roles": ["jobs"]},
]


def captured() -> tuple[Ui, io.StringIO]:
    err = io.StringIO()
    return Ui(stderr=err, stdout=io.StringIO()), err


def local_site(
    tmp_path: Path, services: dict[str, Any] | None = None
) -> tuple[FakeSite, io.StringIO]:
    (tmp_path / "t.env").write_text("PORT=8001\n")
    settings = settings_for(tmp_path, services=services or SERVICES)
    ui, err = captured()
    rt = FakeRuntime({"backend": running("backend"), "worker": running("worker")})
    return FakeSite(settings, ui, {"here": rt}), err


def remote_site(tmp_path: Path) -> tuple[FakeSite, io.StringIO]:
    (tmp_path / "t.env").write_text("PORT=8001\n")
    services = {**SERVICES, "backend": {**SERVICES["backend"], "roles": ["web"]}}
    settings = settings_for(tmp_path, services=services, hosts=HOSTS)
    ui, err = captured()
    runtimes = {
        h["name"]: FakeRuntime({"backend": running("backend"), "worker": running("worker")})
        for h in HOSTS
    }
    return FakeSite(settings, ui, runtimes), err


def stage(*guards: dict[str, Any], soak: int = 0) -> Stage:
    return Stage.model_validate({"soak": soak, "guards": list(guards)})


def test_guards_are_read_at_their_services_probe_url_with_their_path(tmp_path: Path) -> None:
    site, _ = remote_site(tmp_path)
    stats = {"path": "/stats?window=60", "field": "errors.rate", "max": 0.01}
    watched = planned(site, "week2", stage(ERRORS, stats))
    assert [(g.key, g.host, g.url) for g in watched.guards] == [
        ("stages.week2.guards.0", "web-1", "http://127.0.0.1:8001/metrics"),
        ("stages.week2.guards.0", "web-2", "http://127.0.0.1:8002/metrics"),  # its own PORT
        ("stages.week2.guards.1", "web-1", "http://127.0.0.1:8001/stats?window=60"),
        ("stages.week2.guards.1", "web-2", "http://127.0.0.1:8002/stats?window=60"),
    ]  # jobs-1 does not run the backend
    assert watched.describe() == [
        "watch stage week2 once on web-1, web-2, jobs-1: the health of every service",
        "  stages.week2.guards.0: backend GET /metrics: http_request_errors_ratio <= 0.01 "
        "(on web-1, web-2)",
        "  stages.week2.guards.1: backend GET /stats?window=60: errors.rate <= 0.01 "
        "(on web-1, web-2)",
    ]


def test_a_guard_on_a_missing_service_or_one_without_probe_url_names_the_key(
    tmp_path: Path,
) -> None:
    site, _ = local_site(tmp_path)
    bad = stage(ERRORS, {**ERRORS, "service": "api"}, {**ERRORS, "service": "worker"})
    with pytest.raises(OperatorError) as caught:
        planned(site, "week3", bad)
    assert caught.value.problem == (
        "config/flags.toml: 2 problem(s) in the configuration:\n"
        "  stages.week3.guards.1.service: environment t has no service 'api' "
        "(its services: backend, worker)\n"
        "  stages.week3.guards.2.service: service worker of environment t has no probe url "
        "(environments.t.services.worker.probe.url): a guard reads its number from that "
        "URL's host and port"
    )
    assert "probe url" in caught.value.fix


def test_a_probe_url_placeholder_missing_from_the_env_file_is_an_operator_error(
    tmp_path: Path,
) -> None:
    services = {"backend": {"command": ["x"], "probe": {"url": "http://127.0.0.1:{WEB_PORT}/"}}}
    site, _ = local_site(tmp_path, services)
    with pytest.raises(OperatorError, match=r"services\.backend\.probe\.url uses \{WEB_PORT\}"):
        planned(site, "week2", stage(ERRORS))


# -- the watch ------------------------------------------------------------------------------------

Fetch = Callable[[str, float], tuple[int, str]]


def metrics_with(errors: float = 0.004, p95: float = 0.31) -> str:
    return METRICS.replace("ratio 0.004", f"ratio {errors}").replace(
        '"0.95"} 0.31', f'"0.95"}} {p95}'
    )


def scripted(clock: Clock, metrics: Callable[[float], str], calls: list[str]) -> Fetch:
    def fetch(url: str, timeout: float) -> tuple[int, str]:
        calls.append(url)
        if "/health" in url:
            return 200, "{}"
        return 200, metrics(clock.now)

    return fetch


def run_watch(watched: Watched, clock: Clock, fetch: Fetch, **kwargs: Any) -> Any:
    ui, _ = captured()
    return watch(watched, ui, fetch=fetch, clock=clock, sleep=clock.sleep, **kwargs)


def test_a_guard_that_holds_is_checked_every_interval_through_the_soak(tmp_path: Path) -> None:
    site, err = local_site(tmp_path)
    clock, calls = Clock(), list[str]()
    watched = planned(site, "week3", stage(ERRORS, P95, soak=300))
    fetch = scripted(clock, lambda now: metrics_with(p95=0.31 + now / 10000), calls)
    soaked = watch(watched, site.ui, fetch=fetch, clock=clock, sleep=clock.sleep)
    assert soaked.rounds == 61  # at 0, 5, ..., 300
    assert clock.now == 300 and set(clock.sleeps) == {5.0}
    # Each round: the health probe, then one GET of /metrics for both guards.
    assert calls[:2] == ["http://127.0.0.1:8001/health?deep=1", "http://127.0.0.1:8001/metrics"]
    assert len(calls) == 2 * 61
    assert soaked.nearest == {
        "stages.week3.guards.0": (0.004, "here"),
        "stages.week3.guards.1": (pytest.approx(0.34), "here"),  # the highest, at 300 s
    }
    lines = err.getvalue().splitlines()
    assert lines[0] == (
        "watch stage week3 for 300 s, every 5 s, on here: the health of every service"
    )
    progress = [line for line in lines if "s left" in line]
    assert len(progress) == 9  # every 30 s, not every round
    assert progress[0] == (
        "stage week3 holds after 30 s, 270 s left (nearest to their bounds: "
        "http_request_errors_ratio 0.004 on here, "
        'http_request_duration_seconds{quantile="0.95"} 0.313 on here)'
    )
    assert lines[-1] == (
        "stage week3 held for 300 s (61 rounds) on here: every service healthy, every guard "
        "within its bounds"
    )


def test_a_guard_that_fails_midway_ends_the_watch_at_the_next_round(tmp_path: Path) -> None:
    site, _ = remote_site(tmp_path)
    clock, calls = Clock(), list[str]()
    watched = planned(site, "week2", stage(ERRORS, soak=300))

    def fetch(url: str, timeout: float) -> tuple[int, str]:
        calls.append(url)
        bad = clock.now >= 42 and ":40002/" in url  # web-2's numbers go wrong at 42 s
        return 200, metrics_with(errors=0.05 if bad else 0.004)

    with pytest.raises(GuardFailed) as caught:
        run_watch(watched, clock, fetch)
    assert clock.now == 45
    breach = caught.value.breach
    assert breach.as_dict() == {
        "host": "web-2",
        "service": "backend",
        "guard": "stages.week2.guards.0",
        "reason": "backend GET /metrics: http_request_errors_ratio is 0.05, above its max 0.01",
        "seconds": 45.0,
        "value": 0.05,
        "bound": "<= 0.01",
    }
    assert caught.value.problem == (
        "stage week2: guard stages.week2.guards.0 failed on web-2, 45.0 s into its 300 s soak: "
        "backend GET /metrics: http_request_errors_ratio is 0.05, above its max 0.01\n"
        "  guard: backend GET /metrics: http_request_errors_ratio <= 0.01"
    )
    assert caught.value.fix == (
        "see why on web-2: invoke stack.logs --env t --service backend --hosts web-2"
    )
    # The remote hosts' loopback URLs go through their forwards, one per port for the watch.
    assert calls[:3] == [
        "http://127.0.0.1:40001/health?deep=1",
        "http://127.0.0.1:40001/metrics",
        "http://127.0.0.1:40002/health?deep=1",
    ]
    assert site.made["web-1"].forwarded == [8001]
    assert site.made["web-2"].forwarded == [8002]
    assert site.made["jobs-1"].forwarded == []  # runs no service with a probe URL


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ((503, "<h1>busy</h1>"), "backend GET /metrics: HTTP 503: <h1>busy</h1>"),
        ((200, "# TYPE up gauge\nup 1\n"),
         "backend GET /metrics: no metric http_request_errors_ratio in the answer (its "
         "metrics: up)"),
        (ProbeError("ReadTimeout: timed out"),
         "backend GET /metrics: no answer (ReadTimeout: timed out)"),
    ],
)  # fmt: skip
def test_an_unanswered_or_unreadable_guard_fails(
    tmp_path: Path, answer: tuple[int, str] | Exception, reason: str
) -> None:
    site, _ = local_site(tmp_path)
    clock = Clock()

    def fetch(url: str, timeout: float) -> tuple[int, str]:
        if "/health" in url:
            return 200, "{}"
        assert timeout == 2.0  # the probe's request timeout
        if isinstance(answer, Exception):
            raise answer
        return answer

    with pytest.raises(GuardFailed) as caught:
        run_watch(planned(site, "week2", stage(ERRORS, soak=60)), clock, fetch)
    assert caught.value.breach.reason == reason
    assert caught.value.breach.value is None
    assert clock.now == 0  # the first round


def test_a_service_that_is_not_healthy_fails_the_watch_with_its_log(tmp_path: Path) -> None:
    site, _ = local_site(tmp_path)
    clock, calls = Clock(), list[str]()
    runtime: FakeRuntime = site.runtimes["here"]
    fetch = scripted(clock, lambda now: metrics_with(), calls)

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= 20:
            runtime.states["worker"] = ServiceStatus("worker", "exited", exit_code=1)

    ui, _ = captured()
    watched = planned(site, "week2", stage(ERRORS, soak=60))
    with pytest.raises(GuardFailed) as caught:
        watch(watched, ui, fetch=fetch, clock=clock, sleep=sleep)
    assert caught.value.breach.guard is None and caught.value.breach.service == "worker"
    assert caught.value.breach.seconds == 20
    assert caught.value.problem.startswith(
        "stage week2: health of worker failed on here, 20.0 s into its 60 s soak: state is "
    )
    assert "  last 20 log lines of worker:\n    worker line 10\n" in caught.value.problem


def test_a_failing_health_probe_fails_the_watch(tmp_path: Path) -> None:
    site, _ = local_site(tmp_path)

    def fetch(url: str, timeout: float) -> tuple[int, str]:
        return (503, "down for maintenance") if "/health" in url else (200, metrics_with())

    with pytest.raises(GuardFailed) as caught:
        run_watch(planned(site, "week2", stage(ERRORS, soak=60)), Clock(), fetch)
    assert caught.value.breach.reason == "HTTP 503 (expected 200): down for maintenance"
    assert (caught.value.breach.guard, caught.value.breach.service) == (None, "backend")


def test_a_soak_of_0_and_check_once_look_once(tmp_path: Path) -> None:
    site, _ = local_site(tmp_path)
    clock, calls = Clock(), list[str]()
    fetch = scripted(clock, lambda now: metrics_with(), calls)
    soaked = run_watch(planned(site, "week2", stage(ERRORS)), clock, fetch)
    assert (soaked.rounds, clock.sleeps, len(calls)) == (1, [], 2)
    ui, said = captured()
    once = check_once(planned(site, "week3", stage(ERRORS, soak=600)), ui, fetch=fetch)
    assert once.rounds == 1 and len(calls) == 4
    assert said.getvalue().splitlines() == [
        "watch stage week3 once on here: the health of every service",
        "  stages.week3.guards.0: backend GET /metrics: http_request_errors_ratio <= 0.01 "
        "(on here)",
        "stage week3 holds on here: every service healthy, every guard within its bounds",
    ]


def test_a_stage_without_guards_still_watches_the_health(tmp_path: Path) -> None:
    site, _ = local_site(tmp_path)
    clock, calls = Clock(), list[str]()
    soaked = run_watch(
        planned(site, "week4", stage(soak=10)), clock, scripted(clock, str, calls), interval=4
    )
    assert soaked.rounds == 4 and clock.sleeps == [4.0, 4.0, 2.0]  # the last at the soak's end
    assert calls == ["http://127.0.0.1:8001/health?deep=1"] * 4
