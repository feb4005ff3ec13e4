"""A stage's guards watched against a real app (tests/support/guardapp.py, started by the process
runtime) on this machine and on a simulated SSH host, where its 127.0.0.1 URL is reached
through the host's tunnel. The test changes the app's numbers while the watch runs."""

from __future__ import annotations

import io
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from deploytools.flags.guards import GuardFailed, Soaked, Watched, check_once, planned, watch
from deploytools.flags.plan import Stage
from deploytools.probes.health import http_fetch, wait_healthy
from deploytools.runtime.process import ProcessRuntime
from deploytools.site import Site
from deploytools.testing import settings_for
from deploytools.ui import Ui
from tests.support import guardapp
from tests.support.guardapp import ERRORS, P95, Numbers
from tests.support.procs import service_port
from tests.support.sshd import SshTarget

pytestmark = pytest.mark.integration

REQUEST_TIMEOUT = 1.0  # the probe's, which the guards use too
INTERVAL = 0.5
RATE = {"path": "/stats", "field": "errors.rate", "max": 0.01}


@dataclass
class GuardedApp:
    site: Site
    numbers: Numbers
    port: int
    host: str

    def watched(self, *guards: dict[str, Any], soak: int = 0) -> Watched:
        stage = Stage.model_validate({"soak": soak, "guards": list(guards)})
        return planned(self.site, "week2", stage)


def quiet() -> Ui:
    return Ui(stderr=io.StringIO(), stdout=io.StringIO())


def started(root: Path, app_dir: str, numbers: str, **settings: Any) -> Iterator[GuardedApp]:
    """The guard app as the environment's backend, started and healthy; stopped after."""
    port = service_port()
    (root / "t.env").write_text(f"PORT={port}\nGUARD_NUMBERS={numbers}\n")
    conf = settings_for(
        root,
        app_dir=app_dir,
        services={
            "backend": {
                "command": ["{python}", "guardapp.py", "{PORT}", "{GUARD_NUMBERS}"],
                "probe": {
                    "url": "http://127.0.0.1:{PORT}/health",
                    "json_fields": {"status": "healthy"},
                    "request_timeout": REQUEST_TIMEOUT,
                    "timeout": 30,
                },
            }
        },
        timeouts={"stop": 5},
        **settings,
    )
    ui = quiet()
    with Site(conf, ui) as site:
        host = site.primary
        numbers_file = Numbers(numbers)
        numbers_file.set()
        runtime = site.runtime(host)
        assert isinstance(runtime, ProcessRuntime)
        host.makedirs(runtime.app_dir)
        host.write_file(f"{runtime.app_dir}/guardapp.py", Path(guardapp.__file__).read_bytes())
        try:
            runtime.up("r1")
            wait_healthy(conf, runtime, ui, host=host, env_values=site.values_for(host.name))
            yield GuardedApp(site, numbers_file, port, host.name)
        finally:
            runtime.down()


@pytest.fixture(scope="module")
def local_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardedApp]:
    root = tmp_path_factory.mktemp("guards-local")
    yield from started(root, str(root / "app"), str(root / "numbers.json"))


@pytest.fixture(scope="module")
def ssh_app(
    ssh_hosts: Callable[[str], SshTarget], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuardedApp]:
    target = ssh_hosts("guards")
    host = target.host_settings().model_dump(exclude_defaults=True)
    root = tmp_path_factory.mktemp("guards-ssh")
    numbers = f"{target.root}/numbers.json"  # on the host (this machine: the test writes it)
    yield from started(root, "app", numbers, hosts=[host], state_dir=".deploytools")
    shutil.rmtree(f"{target.root}/app", ignore_errors=True)


@pytest.fixture(params=["local", "ssh"])
def app(request: pytest.FixtureRequest) -> GuardedApp:
    found: GuardedApp = request.getfixturevalue(f"{request.param}_app")
    found.numbers.set()  # each test from the app's default numbers
    return found


def recorded(urls: list[tuple[float, str]]) -> Iterator[Callable[[str, float], tuple[int, str]]]:
    """The real fetch, each URL noted with when it was asked for."""
    with http_fetch() as fetch:

        def recording(url: str, timeout: float) -> tuple[int, str]:
            urls.append((time.monotonic(), url))
            return fetch(url, timeout)

        yield recording


def test_guards_that_hold_are_checked_through_the_soak(app: GuardedApp) -> None:
    urls: list[tuple[float, str]] = []
    began = time.monotonic()
    for fetch in recorded(urls):
        soaked: Soaked = watch(
            app.watched(ERRORS, P95, soak=2), quiet(), interval=INTERVAL, fetch=fetch
        )
    assert time.monotonic() - began >= 2
    # Rounds at 0, 0.5, 1, 1.5 and 2 s (fewer when one takes longer than the interval).
    assert 2 <= soaked.rounds <= 5
    assert soaked.nearest == {
        "stages.week2.guards.0": (0.004, app.host),
        "stages.week2.guards.1": (0.31, app.host),
    }
    paths = [urlsplit(url).path for _, url in urls]
    assert paths == ["/health", "/metrics"] * soaked.rounds  # one GET for both guards
    ports = {urlsplit(url).port for _, url in urls}
    if app.site.settings.remote:  # the host's 127.0.0.1 through its SSH tunnel, not ours
        assert len(ports) == 1 and app.port not in ports
    else:
        assert ports == {app.port}


def test_a_guard_that_fails_midway_ends_the_watch_at_the_next_look(app: GuardedApp) -> None:
    urls: list[tuple[float, str]] = []
    changed: list[float] = []  # before and after the file changed

    def change() -> None:
        changed.append(time.monotonic())
        app.numbers.set(errors_ratio=0.05)
        changed.append(time.monotonic())

    timer = threading.Timer(1.2, change)
    began = time.monotonic()
    timer.start()
    try:
        for fetch in recorded(urls):
            with pytest.raises(GuardFailed) as caught:
                watch(app.watched(ERRORS, soak=30), quiet(), interval=INTERVAL, fetch=fetch)
    finally:
        timer.cancel()
    assert time.monotonic() - began < 15  # far from the end of its 30 s soak
    breach = caught.value.breach
    assert (breach.host, breach.guard, breach.value, breach.bound) == (
        app.host,
        "stages.week2.guards.0",
        0.05,
        "<= 0.01",
    )
    looks = [at for at, url in urls if urlsplit(url).path == "/metrics"]
    assert len(looks) >= 2  # it held before the change
    assert len([at for at in looks if at > changed[0]]) >= 1
    assert len([at for at in looks if at > changed[1]]) <= 1  # the first look after it failed


def test_a_server_that_hangs_fails_the_guard_in_its_request_timeout(app: GuardedApp) -> None:
    app.numbers.set(hang=["/metrics"])
    began = time.monotonic()
    with pytest.raises(GuardFailed) as caught:
        watch(app.watched(ERRORS, soak=30), quiet(), interval=INTERVAL)
    elapsed = time.monotonic() - began
    # Not the app's 120 s hang, nor the 30 s soak: the margin is for the SSH forward's setup
    # on a loaded machine (2 s was once missed by 0.08 s), not a speed figure.
    assert REQUEST_TIMEOUT <= elapsed < REQUEST_TIMEOUT + 15.0
    assert caught.value.breach.reason.startswith("backend GET /metrics: no answer (ReadTimeout")


def test_a_metric_missing_fails_naming_what_was_there(local_app: GuardedApp) -> None:
    local_app.numbers.set(missing=["errors_ratio"])
    with pytest.raises(GuardFailed) as caught:
        check_once(local_app.watched(ERRORS, soak=600), quiet())
    assert caught.value.breach.reason == (
        "backend GET /metrics: no metric http_request_errors_ratio in the answer (its metrics: "
        "http_request_duration_seconds, http_request_duration_seconds_count, "
        "http_request_duration_seconds_sum, http_requests_total)"
    )


def test_a_json_field_is_read_and_a_missing_one_fails(local_app: GuardedApp) -> None:
    local_app.numbers.set(errors_ratio=0.002)
    assert check_once(local_app.watched(RATE), quiet()).nearest == {
        "stages.week2.guards.0": (0.002, local_app.host)
    }
    local_app.numbers.set(missing=["errors_ratio"])
    with pytest.raises(GuardFailed) as caught:
        check_once(local_app.watched(RATE), quiet())
    assert caught.value.breach.reason == (
        "backend GET /stats: no field errors.rate in the JSON answer (errors has count)"
    )


def test_labels_select_the_p95_sample_of_the_summary(local_app: GuardedApp) -> None:
    watched = local_app.watched(P95)
    local_app.numbers.set(p50=0.7, p95=0.3)  # the median above the bound: not the one read
    assert check_once(watched, quiet()).nearest["stages.week2.guards.0"][0] == 0.3
    local_app.numbers.set(p50=0.1, p95=0.7)
    with pytest.raises(GuardFailed) as caught:
        check_once(watched, quiet())
    assert (caught.value.breach.value, caught.value.breach.bound) == (0.7, "<= 0.5")
