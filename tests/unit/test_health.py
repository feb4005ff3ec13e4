"""wait_healthy with a scripted runtime, a scripted probe and a fake clock (no sleeping)."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from deploytools.config import ProbeSettings
from deploytools.errors import DeployFailure, OperatorError
from deploytools.health import BODY_CHARS, STATUS_INTERVAL, ProbeError, judge, wait_healthy
from deploytools.hosts.base import Result
from deploytools.redact import Redactor
from deploytools.runtime.base import ServiceStatus
from deploytools.ui import Ui
from tests.support.memhost import MemoryHost
from tests.support.stackenv import make_settings

HEALTHY = '{"status": "healthy", "database": "ok"}'
VALUES = {"PORT": "8123"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeRuntime:
    """Services in a state that a test may change as the clock runs."""

    kind = "process"

    def __init__(self, states: dict[str, ServiceStatus]) -> None:
        self.states = states
        self.status_calls = 0

    def services(self) -> list[str]:
        return list(self.states)

    def require_services(self, names: Sequence[str]) -> list[str]:
        unknown = [n for n in names if n not in self.states]
        if unknown:
            raise OperatorError(f"unknown service(s) {', '.join(unknown)}")
        return list(names) or self.services()

    def status(self) -> dict[str, ServiceStatus]:
        self.status_calls += 1
        return dict(self.states)

    def logs(self, service: str, lines: int = 50) -> str:
        return "".join(f"{service} line {i}\n" for i in range(30)[-lines:])

    def exec(self, service: str, command: Sequence[str]) -> Result:
        raise NotImplementedError


def running(name: str, health: str = "") -> ServiceStatus:
    return ServiceStatus(name, "running", health=health, release="r1", detail=f"{name}-1")


def settings(tmp_path: Path, **probe: Any) -> Any:
    backend_probe = {"url": "http://127.0.0.1:{PORT}/health", "json_fields": {"status": "healthy"}}
    return make_settings(
        tmp_path,
        services={
            "backend": {"command": ["x"], "probe": {**backend_probe, "timeout": 5, **probe}},
            "celery-worker": {"command": ["y"], "probe": {"timeout": 3}},
        },
    )


def quiet_ui() -> Ui:
    return Ui(stderr=io.StringIO(), stdout=io.StringIO())


def wait(
    tmp_path: Path,
    rt: FakeRuntime,
    fetch: Callable[[str, float], tuple[int, str]],
    clock: Clock,
    **kwargs: Any,
) -> Any:
    conf = kwargs.pop("conf", None) or settings(tmp_path)
    return wait_healthy(
        conf,
        rt,  # type: ignore[arg-type]
        quiet_ui(),
        host=kwargs.pop("host", MemoryHost()),
        env_values=VALUES,
        fetch=fetch,
        clock=clock,
        sleep=clock.sleep,
        **kwargs,
    )


def test_healthy_after_consecutive_passes_polling_every_interval(tmp_path: Path) -> None:
    clock = Clock()
    rt = FakeRuntime({"backend": running("backend"), "celery-worker": running("celery-worker")})
    urls: list[str] = []

    def fetch(url: str, timeout: float) -> tuple[int, str]:
        urls.append(url)
        if clock.now < 1.0:
            raise ProbeError("ConnectError: [Errno 111] Connection refused")
        return 200, HEALTHY

    done = wait(tmp_path, rt, fetch, clock)
    by_name = {h.service: h for h in done}
    assert set(by_name) == {"backend", "celery-worker"}
    # No probe: running in two looks at the runtime's state, STATUS_INTERVAL apart.
    assert by_name["celery-worker"].seconds == pytest.approx(STATUS_INTERVAL)
    assert 1.0 <= by_name["backend"].seconds <= 1.0 + 2 * 0.1 + 1e-9
    assert set(urls) == {"http://127.0.0.1:8123/health"}
    assert len(urls) >= 11  # probed every 0.1 s...
    assert rt.status_calls == 3  # ...the state asked at 0, 0.5 and 1.0 s only
    assert all(abs(s - 0.1) < 1e-9 for s in clock.sleeps)


def test_a_failed_pass_resets_the_count(tmp_path: Path) -> None:
    clock = Clock()
    rt = FakeRuntime({"backend": running("backend")})
    answers = iter([(200, HEALTHY), (503, "{}"), (200, HEALTHY), (200, HEALTHY)])
    done = wait(tmp_path, rt, lambda url, t: next(answers), clock, services=["backend"])
    assert done[0].seconds == pytest.approx(0.3)


def test_timeout_names_service_probe_last_answer_and_log_lines(tmp_path: Path) -> None:
    clock = Clock()
    rt = FakeRuntime({"backend": running("backend"), "celery-worker": running("celery-worker")})
    body = '{"status": "unhealthy", "database": "OperationalError: connection refused"}'
    with pytest.raises(DeployFailure) as failure:
        wait(tmp_path, rt, lambda url, t: (503, body), clock)
    text = failure.value.problem
    assert text.startswith("backend not healthy after 5s")
    assert "GET http://127.0.0.1:8123/health -> 200 with status == 'healthy'" in text
    assert "last result: HTTP 503 (expected 200)" in text
    assert "OperationalError: connection refused" in text
    assert "backend line 29" in text and "backend line 10" in text
    assert "backend line 9\n" not in text  # the last 20 lines were asked for
    assert "invoke stack.logs --env t --service backend" in failure.value.fix
    assert 5.0 <= clock.now < 5.2


def test_each_service_has_its_own_timeout(tmp_path: Path) -> None:
    clock = Clock()
    rt = FakeRuntime({"backend": running("backend"), "celery-worker": running("celery-worker")})
    rt.kind = "compose"  # the worker then waits for its container healthcheck
    rt.states["celery-worker"] = running("celery-worker", health="starting")
    with pytest.raises(DeployFailure) as failure:
        wait(tmp_path, rt, lambda url, t: (200, HEALTHY), clock)
    assert failure.value.problem.startswith("celery-worker not healthy after 3s")
    assert "container healthcheck says starting" in failure.value.problem


def test_a_crash_fails_the_wait_at_once(tmp_path: Path) -> None:
    clock = Clock()
    rt = FakeRuntime({"backend": running("backend"), "celery-worker": running("celery-worker")})

    def fetch(url: str, timeout: float) -> tuple[int, str]:
        if clock.now >= 0.3:
            rt.states["backend"] = ServiceStatus("backend", "exited", exit_code=3, detail="pid 9")
        raise ProbeError("ConnectError: refused")

    with pytest.raises(DeployFailure) as failure:
        wait(tmp_path, rt, fetch, clock)
    assert failure.value.problem.startswith(
        "backend stopped (exited, exit code 3) while waiting for it to become healthy"
    )
    assert "backend line 29" in failure.value.problem
    assert clock.now < 0.6


def test_a_service_that_is_not_there_fails_at_once(tmp_path: Path) -> None:
    clock = Clock()
    rt = FakeRuntime({"backend": ServiceStatus("backend", "missing")})
    with pytest.raises(DeployFailure, match="backend is not running"):
        wait(tmp_path, rt, lambda url, t: (200, HEALTHY), clock)
    assert clock.now == 0.0


def test_timeout_argument_replaces_the_service_timeouts(tmp_path: Path) -> None:
    clock = Clock()
    rt = FakeRuntime({"backend": running("backend")})
    with pytest.raises(DeployFailure, match=r"backend not healthy after 1\.5s"):
        wait(tmp_path, rt, lambda url, t: (500, "boom"), clock, timeout=1.5)


def test_request_timeout_never_exceeds_the_time_left(tmp_path: Path) -> None:
    clock = Clock()
    rt = FakeRuntime({"backend": running("backend")})
    budgets: list[float] = []

    def fetch(url: str, timeout: float) -> tuple[int, str]:
        budgets.append(timeout)
        clock.now += timeout  # the request hangs for its whole budget
        raise ProbeError("ReadTimeout")

    with pytest.raises(DeployFailure, match="last result: ReadTimeout"):
        wait(tmp_path, rt, fetch, clock, conf=settings(tmp_path, request_timeout=2.0))
    assert budgets[0] == 2.0
    assert min(budgets) < 2.0
    assert clock.now <= 5.0 + 0.2


def test_loopback_probe_goes_through_the_hosts_forward(tmp_path: Path) -> None:
    class Forwarding(MemoryHost):
        def forward(self, remote_port: int) -> contextlib.AbstractContextManager[int]:
            @contextlib.contextmanager
            def tunnel() -> Iterator[int]:
                self.forwarded = remote_port
                yield 40001

            return tunnel()

    host = Forwarding()
    urls: list[str] = []
    rt = FakeRuntime({"backend": running("backend")})

    def fetch(url: str, timeout: float) -> tuple[int, str]:
        urls.append(url)
        return 200, HEALTHY

    wait(tmp_path, rt, fetch, Clock(), host=host)
    assert host.forwarded == 8123
    assert urls[0] == "http://127.0.0.1:40001/health"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:{PORT/health", "bad placeholder"),
        ("http://127.0.0.1:{MISSING}/health", "MISSING is not set in the env file"),
        ("127.0.0.1:{PORT}/health", "is not an http(s) URL"),
        ("http://127.0.0.1:99999/health", "is not a valid URL"),
    ],
)
def test_bad_probe_url_is_an_operator_error_before_any_wait(
    tmp_path: Path, url: str, message: str
) -> None:
    rt = FakeRuntime({"backend": running("backend")})
    with pytest.raises(OperatorError, match=r"services\.backend\.probe\.url") as failure:
        wait(tmp_path, rt, lambda u, t: (200, HEALTHY), Clock(), conf=settings(tmp_path, url=url))
    assert message in failure.value.problem
    assert rt.status_calls == 0


def test_unknown_service_is_an_operator_error(tmp_path: Path) -> None:
    rt = FakeRuntime({"backend": running("backend")})
    with pytest.raises(OperatorError, match="unknown service"):
        wait(tmp_path, rt, lambda u, t: (200, HEALTHY), Clock(), services=["nginx"])


def test_judge() -> None:
    plain = ProbeSettings(expect_status=204)
    redact = Redactor()
    assert judge(plain, 204, "", redact) is None
    assert judge(plain, 200, "ok", redact) == "HTTP 200 (expected 204): ok"
    nested = ProbeSettings(json_fields={"checks.db": "ok", "ready": True})
    assert judge(nested, 200, '{"checks": {"db": "ok"}, "ready": true}', redact) is None
    assert judge(nested, 200, '{"checks": {"db": "down"}, "ready": true}', redact) == (
        "HTTP 200 but checks.db is 'down' (expected 'ok'): "
        '{"checks": {"db": "down"}, "ready": true}'
    )
    body = "<html>"
    assert str(judge(nested, 200, body, redact)).startswith("HTTP 200 but the body is not JSON")


@pytest.mark.parametrize(
    ("secret", "pad"), [("Zq8vN3rLk5wT1yXb7mP0", BODY_CHARS - 30), ("Zq8vN3r  Lk5wT1yXb", 0)]
)
def test_judge_shows_no_part_of_a_secret_cut_or_squeezed_in_the_body(secret: str, pad: int) -> None:
    """The body is cut to BODY_CHARS and its whitespace squeezed: neither may reveal a part."""
    body = json.dumps({"pad": "p" * pad, "detail": secret})
    shown = str(judge(ProbeSettings(), 503, body, Redactor([secret])))
    assert "Zq8vN3r" not in shown and shown.endswith('"detail": "***"}')
