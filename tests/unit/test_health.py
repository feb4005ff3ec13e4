"""wait_healthy with a scripted runtime, a scripted probe and a fake clock (no sleeping)."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploytools.config import ProbeSettings, ServiceSettings
from deploytools.errors import DeployFailure, OperatorError
from deploytools.probes.health import (
    BODY_CHARS,
    STATUS_INTERVAL,
    ProbeError,
    judge,
    targets_for,
    wait_healthy,
)
from deploytools.redact import Redactor
from deploytools.runtime.base import ServiceStatus
from deploytools.testing import Clock, MemoryHost
from deploytools.ui import Ui
from tests.support.fakeruntime import FakeRuntime, running
from tests.support.stackenv import make_settings

HEALTHY = '{"status": "healthy", "database": "ok"}'
VALUES = {"PORT": "8123"}


def settings(tmp_path: Path, min_healthy: float = 0.0, **probe: Any) -> Any:
    """Backend (HTTP probe, 5 s) and worker (running is enough, 3 s); no hold unless asked."""
    backend_probe = {"url": "http://127.0.0.1:{PORT}/health", "json_fields": {"status": "healthy"}}
    held = {"min_healthy": min_healthy}
    return make_settings(
        tmp_path,
        services={
            "backend": {
                "command": ["x"],
                "probe": {**backend_probe, "timeout": 5, **held, **probe},
            },
            "celery-worker": {"command": ["y"], "probe": {"timeout": 3, **held}},
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


# -- staying healthy (probe.min_healthy) -------------------------------------------------------


def counted(name: str, restarts: int = 0, instance: str = "c1") -> ServiceStatus:
    """A running container as compose reports it: its id and its restart count."""
    return ServiceStatus(
        name, "running", release="r1", detail=f"{name}-1", instance=instance, restarts=restarts
    )


def test_a_healthy_service_is_held_for_min_healthy_and_the_holds_overlap(tmp_path: Path) -> None:
    clock = Clock()
    rt = FakeRuntime({"backend": running("backend"), "celery-worker": running("celery-worker")})
    probed: list[float] = []

    def fetch(url: str, timeout: float) -> tuple[int, str]:
        probed.append(clock.now)
        if clock.now < 1.0:
            raise ProbeError("ConnectError: refused")
        return 200, HEALTHY

    done = wait(tmp_path, rt, fetch, clock, conf=settings(tmp_path, min_healthy=5))

    by_name = {h.service: h for h in done}
    assert by_name["celery-worker"].seconds == pytest.approx(STATUS_INTERVAL)
    assert 1.0 <= by_name["backend"].seconds <= 1.2
    assert {h.held for h in done} == {5.0}
    # One hold for both, not one after the other: the backend's 5 s end the wait.
    assert by_name["backend"].seconds + 5.0 <= clock.now <= by_name["backend"].seconds + 5.2
    # The probe went on every 0.1 s while it was held.
    held = [t for t in probed if t > by_name["backend"].seconds]
    assert len(held) >= 49 and max(b - a for a, b in itertools.pairwise(held)) < 0.11


def changes_at(
    clock: Clock, rt: FakeRuntime, at: float, later: ServiceStatus, *, refused: bool = False
) -> Callable[[str, float], tuple[int, str]]:
    """A healthy probe; from ``at`` on the backend is ``later`` (and refuses, if ``refused``)."""

    def fetch(url: str, timeout: float) -> tuple[int, str]:
        if clock.now >= at:
            rt.states["backend"] = later
            if refused:
                raise ProbeError("ConnectError: [Errno 111] Connection refused")
        return 200, HEALTHY

    return fetch


def held_failure(
    tmp_path: Path, rt: FakeRuntime, clock: Clock, fetch: Callable[[str, float], tuple[int, str]]
) -> str:
    """Wait for the backend alone, held 5 s, which must fail: what the failure says."""
    with pytest.raises(DeployFailure) as failure:
        wait(tmp_path, rt, fetch, clock, services=["backend"], conf=settings(tmp_path, 5))
    return failure.value.problem


def test_a_restart_while_held_fails_the_wait_naming_the_restart_counts(tmp_path: Path) -> None:
    clock = Clock()
    rt = FakeRuntime({"backend": counted("backend")})
    rt.kind = "compose"
    # It crashed and Docker started it again at once: running at every look.
    fetch = changes_at(clock, rt, 3.1, counted("backend", restarts=1))

    text = held_failure(tmp_path, rt, clock, fetch)

    assert text.startswith(
        "backend was healthy at 0.1s, then failed 3.4s later: restarted (restart count 0 -> 1)"
    ), text
    assert "backend line 29" in text  # its log
    assert clock.now == pytest.approx(3.5)


def test_a_failed_probe_while_held_fails_the_wait(tmp_path: Path) -> None:
    clock = Clock()
    rt = FakeRuntime({"backend": running("backend")})

    def fetch(url: str, timeout: float) -> tuple[int, str]:
        return (503, '{"status": "unhealthy"}') if clock.now >= 2.0 else (200, HEALTHY)

    assert held_failure(tmp_path, rt, clock, fetch).startswith(
        "backend was healthy at 0.1s, then failed 1.9s later: its health check failed: "
        "HTTP 503 (expected 200)"
    )


def test_a_probe_refused_because_the_process_died_says_it_died(tmp_path: Path) -> None:
    """The state in hand is up to STATUS_INTERVAL old: the runtime is asked again."""
    clock = Clock()
    rt = FakeRuntime({"backend": ServiceStatus("backend", "running", instance="101")})
    gone = ServiceStatus("backend", "exited", exit_code=1, instance="101")

    text = held_failure(tmp_path, rt, clock, changes_at(clock, rt, 3.05, gone, refused=True))

    assert text.startswith(
        "backend was healthy at 0.1s, then failed 3.0s later: stopped (exited, exit code 1)\n"
    ), text
    assert "state: exited, exit code 1" in text


@pytest.mark.parametrize(
    ("later", "change"),
    [
        (ServiceStatus("backend", "running", instance="202", detail="pid 202"),
         "pid changed (101 -> 202)"),
        (ServiceStatus("backend", "exited", exit_code=1, instance="101", detail="pid 101"),
         "stopped (exited, exit code 1)"),
    ],
)  # fmt: skip
def test_a_process_replaced_or_gone_while_held_fails_the_wait(
    tmp_path: Path, later: ServiceStatus, change: str
) -> None:
    clock = Clock()
    rt = FakeRuntime({"backend": ServiceStatus("backend", "running", instance="101")})
    text = held_failure(tmp_path, rt, clock, changes_at(clock, rt, 3.0, later))
    assert re.match(r"backend was healthy at 0\.1s, then failed 3\.\ds later: ", text), text
    assert change in text.splitlines()[0]


# -- one-shot services ---------------------------------------------------------------------------


def one_shot_settings(tmp_path: Path) -> Any:
    """The two long-running services (held 5 s) and a one-shot ``migrate`` given 3 s."""
    base = settings(tmp_path, min_healthy=5)
    migrate = {"command": ["m"], "oneshot": True, "probe": {"timeout": 3, "min_healthy": 5}}
    return base.model_copy(
        update={"services": {**base.services, "migrate": ServiceSettings.model_validate(migrate)}}
    )


def exited(name: str, code: int | None) -> ServiceStatus:
    return ServiceStatus(name, "exited", exit_code=code, release="r1", detail=f"{name}-1")


@pytest.mark.parametrize("runs_for", [0.0, 2.0])
def test_a_one_shot_that_exits_0_is_done_however_fast_it_exits(
    tmp_path: Path, runs_for: float
) -> None:
    clock = Clock()
    rt = FakeRuntime({"migrate": running("migrate")}, oneshot=["migrate"])

    def status() -> dict[str, ServiceStatus]:
        rt.states["migrate"] = running("migrate") if clock.now < runs_for else exited("migrate", 0)
        return dict(rt.states)

    rt.status = status  # type: ignore[method-assign]
    done = wait(tmp_path, rt, lambda u, t: (200, HEALTHY), clock, conf=one_shot_settings(tmp_path),
                services=["migrate"])  # fmt: skip
    assert [(h.service, h.probe, h.held) for h in done] == [
        ("migrate", "completed (exit code 0)", 0.0)
    ]
    assert done[0].seconds == pytest.approx(runs_for) and clock.now == pytest.approx(runs_for)


def test_one_shots_complete_while_the_others_are_held(tmp_path: Path) -> None:
    clock = Clock()
    rt = FakeRuntime(
        {"backend": running("backend"), "celery-worker": running("celery-worker"),
         "migrate": exited("migrate", 0)},
        oneshot=["migrate"],
    )  # fmt: skip
    done = wait(tmp_path, rt, lambda u, t: (200, HEALTHY), clock, conf=one_shot_settings(tmp_path))
    assert {h.service: h.held for h in done} == {"backend": 5, "celery-worker": 5, "migrate": 0}
    assert clock.now < 6.0


def test_a_one_shot_that_exits_non_zero_fails_the_wait_at_once(tmp_path: Path) -> None:
    clock = Clock()
    rt = FakeRuntime(
        {"backend": running("backend"), "migrate": exited("migrate", 1)}, oneshot=["migrate"]
    )
    with pytest.raises(DeployFailure) as failure:
        wait(tmp_path, rt, lambda u, t: (503, "{}"), clock, conf=one_shot_settings(tmp_path),
             services=["backend", "migrate"])  # fmt: skip
    text = failure.value.problem
    assert text.startswith("one-shot migrate failed (exit code 1)\n"), text
    assert "check: one-shot: done when it exits 0" in text
    assert "state: exited, exit code 1 (migrate-1)" in text
    assert "last 20 log lines of migrate:" in text and "migrate line 29" in text
    assert "--service migrate" in failure.value.fix
    assert clock.now == 0.0


def test_a_one_shot_that_does_not_complete_in_its_timeout_fails(tmp_path: Path) -> None:
    clock = Clock()
    rt = FakeRuntime({"migrate": running("migrate")}, oneshot=["migrate"])
    with pytest.raises(DeployFailure) as failure:
        wait(tmp_path, rt, lambda u, t: (200, HEALTHY), clock, conf=one_shot_settings(tmp_path))
    assert failure.value.problem.startswith("one-shot migrate did not complete within 3s")
    assert "state: running" in failure.value.problem
    assert 3.0 <= clock.now < 3.6
    assert rt.status_calls <= 8  # a one-shot without a probe is looked at with each new state


def test_a_long_running_service_that_exits_0_still_fails(tmp_path: Path) -> None:
    clock = Clock()
    rt = FakeRuntime({"celery-worker": exited("celery-worker", 0)})
    with pytest.raises(DeployFailure) as failure:
        wait(tmp_path, rt, lambda u, t: (200, HEALTHY), clock)
    assert failure.value.problem.startswith(
        "celery-worker stopped (exited, exit code 0) while waiting for it to become healthy"
    )


def test_the_plan_says_what_each_service_must_do(tmp_path: Path) -> None:
    rt = FakeRuntime({"backend": running("backend"), "migrate": running("migrate")},
                     oneshot=["migrate"])  # fmt: skip
    targets = targets_for(one_shot_settings(tmp_path), rt, VALUES)  # type: ignore[arg-type]
    assert [t.describe_plan() for t in targets] == [
        "backend: GET http://127.0.0.1:8123/health -> 200 with status == 'healthy', 2 passes in "
        "a row within 5 s, then stay healthy for 5 s (same process, no restart)",
        "migrate: one-shot, must exit 0 within 3 s",
    ]
