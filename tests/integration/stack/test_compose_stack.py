"""The example stack under docker compose on a real engine: wait and verify, and their failures.

One compose project (unique name) runs for the whole module, on the session's image, Postgres
and Redis, and is taken down at the end, also on failure. A test that needs a healthy stack on
release r1 brings it back to that state first; a test leaves the worker as its scenario left it
(recreating a container copies the whole image with the vfs storage driver: seconds each).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from deploytools.config import EnvironmentSettings
from deploytools.errors import DeployFailure, OperatorError
from deploytools.hosts.local import LocalHost
from deploytools.probes.celery import CeleryCheckFailed, verify_celery
from deploytools.probes.health import wait_healthy
from deploytools.runtime.compose import ComposeRuntime
from tests.integration.stack.conftest import CapturedUi, Image, compose_settings, write_env
from tests.support.procs import free_port

pytestmark = pytest.mark.integration

WORKER = f"celery@{socket.gethostname()}"


@dataclass
class Stack:
    settings: EnvironmentSettings
    runtime: ComposeRuntime
    values: dict[str, str]
    root: Path
    built: list[str] = field(default_factory=list)  # releases to untag after ``down``

    def wait(self, ui: CapturedUi, **kwargs: Any) -> Any:
        return wait_healthy(
            self.settings, self.runtime, ui.ui, host=LocalHost(), env_values=self.values, **kwargs
        )

    def verify(self, ui: CapturedUi, release: str) -> Any:
        return verify_celery(self.settings, self.values, release, ui.ui, host=LocalHost())

    def healthy_on(self, release: str, ui: CapturedUi) -> None:
        """Back to every service running ``release`` and healthy (a test's starting point)."""
        self.runtime.up(release)
        self.wait(ui)

    def extended(
        self, name: str, compose: str, image: str, services: dict[str, Any] | None = None
    ) -> ComposeRuntime:
        """The same project with one more compose file (``compose``, written as ``name``)."""
        extra = self.root / name
        extra.write_text(compose)
        settings = compose_settings(
            self.root,
            Path(self.settings.env_file),
            self.runtime.project.name,
            image,
            extra_files=(str(extra),),
            services=services,
        )
        return ComposeRuntime(settings, LocalHost())

    def wait_with(self, runtime: ComposeRuntime, ui: CapturedUi, **kwargs: Any) -> Any:
        return wait_healthy(
            runtime.settings, runtime, ui.ui, host=LocalHost(), env_values=self.values, **kwargs
        )


@pytest.fixture(scope="module")
def stack(
    example_image: Image,
    postgres_server: Any,
    redis_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("compose-stack")
    broker = redis_server.url(5)
    values = {
        "HOST": "127.0.0.1",  # host networking: loopback only
        "PORT": str(free_port()),
        "DATABASE_URL": postgres_server.create_database("stack_compose"),
        "REDIS_URL": broker,
        "CELERY_BROKER_URL": broker,
        "LOG_LEVEL": "INFO",
    }
    env_file = write_env(root / "stack.env", values)
    project = f"dtstack-{uuid.uuid4().hex[:8]}"
    settings = compose_settings(root, env_file, project, example_image.name)
    runtime = ComposeRuntime(settings, LocalHost())
    stack = Stack(settings, runtime, values, root)
    try:
        runtime.up(example_image.release)
        yield stack
    finally:
        runtime.down()
        for release in stack.built:
            runtime.remove_release(release)


def test_stack_comes_up_healthy_and_celery_verifies(
    stack: Stack, example_image: Image, captured: CapturedUi
) -> None:
    healthy = stack.wait(captured)
    assert {h.service for h in healthy} == {"backend", "celery-worker"}
    status = stack.runtime.status()
    assert {s.state for s in status.values()} == {"running"}
    assert {s.health for s in status.values()} == {"healthy"}
    assert stack.runtime.current_release() == "r1"

    report = stack.verify(captured, "r1")
    assert report.workers == [WORKER]
    assert report.releases == {WORKER: "r1"}
    assert "all on release r1" in captured.text


def test_backend_unhealthy_when_its_database_goes_away(
    stack: Stack, postgres_server: Any, captured: CapturedUi
) -> None:
    stack.healthy_on("r1", captured)
    postgres_server.stop()
    try:
        with pytest.raises(DeployFailure) as failure:
            stack.wait(captured, services=["backend"], timeout=4)
    finally:
        postgres_server.start()
    text = failure.value.problem
    assert text.startswith("backend not healthy after 4s")
    assert f"GET http://127.0.0.1:{stack.values['PORT']}/health" in text
    assert "last result: HTTP 503 (expected 200)" in text
    assert '"status":"unhealthy"' in text and '"database":"OperationalError' in text
    assert "log lines of backend:" in text
    assert "unhealthy: database=" in text  # the backend's own log line
    assert postgres_server.password not in text
    stack.wait(captured, services=["backend"])  # and it recovers by itself


def test_stopped_worker_is_no_worker_answering_and_fails_the_wait_at_once(
    stack: Stack, captured: CapturedUi
) -> None:
    stack.healthy_on("r1", captured)
    stack.runtime.stop(["celery-worker"])
    with pytest.raises(CeleryCheckFailed) as failure:
        stack.verify(captured, "r1")
    assert failure.value.kind == "no-worker"
    assert "no worker answering" in failure.value.problem
    with pytest.raises(DeployFailure) as waited:
        stack.wait(captured)
    assert "celery-worker stopped (exited" in waited.value.problem


def test_worker_on_another_release_is_reported(
    stack: Stack, example_image: Image, captured: CapturedUi
) -> None:
    stack.healthy_on("r1", captured)
    stack.built.append("r2")
    stack.runtime.build("r2")  # only the release label layers change: cached
    assert stack.runtime.has_release("r2")
    stack.runtime.up("r2", ["celery-worker"])
    stack.wait(captured, services=["celery-worker"])
    with pytest.raises(CeleryCheckFailed) as failure:
        stack.verify(captured, "r1")
    assert failure.value.kind == "wrong-release"
    assert f"{WORKER} runs 'r2'" in failure.value.problem
    assert stack.runtime.status()["backend"].release == "r1"
    assert stack.runtime.has_release("r1")  # a rollback to r1 needs no build


def test_worker_that_crashes_on_start_fails_the_wait_quickly(
    stack: Stack, example_image: Image, captured: CapturedUi
) -> None:
    # Whatever the worker runs now is replaced (--no-deps): no need to restore r1 first.
    crash = (
        "services:\n"
        "  celery-worker:\n"
        '    command: ["python", "-c", "import sys; print(\'worker boom\'); sys.exit(3)"]\n'
    )
    crashing = stack.extended("crash.yml", crash, example_image.name)
    crashing.up("r1", ["celery-worker"])
    with pytest.raises(DeployFailure) as failure:
        stack.wait_with(crashing, captured)
    text = failure.value.problem
    assert text.startswith("celery-worker stopped (")  # not "not healthy after 120s"
    assert "worker boom" in text


def _containers(project: str) -> dict[str, str]:
    """Container id -> "<environment label> <state>" of a compose project on the engine."""
    done = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
         "--format", '{{.ID}} {{.Label "io.deploytools.environment"}} {{.State}}'],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.strip())


def test_containers_carry_their_environment_and_no_other_environment_acts_on_them(
    stack: Stack, captured: CapturedUi
) -> None:
    stack.healthy_on("r1", captured)
    before = _containers(stack.runtime.project.name)
    assert sorted(before.values()) == ["t running", "t running"]
    other = ComposeRuntime(stack.settings.model_copy(update={"name": "u"}), LocalHost())

    for act in (other.status, other.current_release, other.down, lambda: other.up("r1")):
        with pytest.raises(OperatorError) as refused:
            act()
        assert (
            f"compose project {stack.runtime.project.name} on local holds containers of "
            "environment t"
        ) in refused.value.problem
        assert "u does not act on them" in refused.value.problem

    assert _containers(stack.runtime.project.name) == before
    assert stack.runtime.current_release() == "r1"


# -- one-shot services, and services that must stay healthy -------------------------------------


NO_HEALTHCHECK = "    healthcheck: {disable: true}\n"


def one_shot(name: str, code: str, *, restart: str = '"no"', extra: str = "") -> str:
    """A compose service of the example's image that runs ``code`` (Python) and exits."""
    return (
        f"  {name}:\n"
        "    image: ${IMAGE_NAME}:${RELEASE_ID}\n"
        "    env_file: ${ENV_FILE}\n"
        "    network_mode: host\n"
        f"    restart: {restart}\n"
        f"    command: {json.dumps(['python', '-c', code])}\n"
        f"{extra}"
    )


@pytest.mark.parametrize("seconds", [0, 2])
def test_a_one_shot_that_exits_0_is_done_however_long_it_runs(
    stack: Stack, example_image: Image, captured: CapturedUi, seconds: int
) -> None:
    stack.healthy_on("r1", captured)
    code = f"import time; print('migrating'); time.sleep({seconds}); print('migrated')"
    runtime = stack.extended("oneshot.yml", "services:\n" + one_shot("migrate", code),
                             example_image.name)  # fmt: skip
    assert runtime.one_shots() == {"migrate"}
    runtime.up("r1", ["migrate"])

    done = {h.service: h for h in stack.wait_with(runtime, captured)}

    assert set(done) == {"backend", "celery-worker", "migrate"}
    assert (done["migrate"].probe, done["migrate"].held) == ("completed (exit code 0)", 0.0)
    if seconds:  # seen running first, then done: the same verdict
        assert done["migrate"].seconds >= 1.0
    assert done["backend"].held == 5.0  # the long-running ones were held
    assert "migrate completed after" in captured.text
    assert runtime.status()["migrate"].completed


def test_a_one_shot_that_exits_1_fails_the_wait_naming_it_with_its_log(
    stack: Stack, example_image: Image, captured: CapturedUi
) -> None:
    code = "import sys; print('migration 0004: no such table: users'); sys.exit(1)"
    runtime = stack.extended("oneshot.yml", "services:\n" + one_shot("migrate", code),
                             example_image.name)  # fmt: skip
    runtime.up("r1", ["migrate"])

    with pytest.raises(DeployFailure) as failure:
        stack.wait_with(runtime, captured, services=["migrate"])

    text = failure.value.problem
    assert text.startswith("one-shot migrate failed (exit code 1)\n"), text
    assert "migration 0004: no such table: users" in text  # its log
    assert "--service migrate" in failure.value.fix


def test_up_names_the_failed_one_shot_that_a_service_waits_for(
    stack: Stack, example_image: Image, captured: CapturedUi
) -> None:
    bad = "import sys; print('collectstatic: disk full'); sys.exit(2)"
    after = "import time; time.sleep(300)"
    waits = "    depends_on:\n      collect: {condition: service_completed_successfully}\n"
    compose = "services:\n" + one_shot("collect", bad) + one_shot("after", after, extra=waits)
    runtime = stack.extended("awaited.yml", compose, example_image.name)
    assert runtime.one_shots() == {"collect", "after"}  # "after": no restart policy, no check

    with pytest.raises(DeployFailure) as failure:
        runtime.up("r1", ["collect", "after"])

    text = failure.value.problem
    assert text.startswith("one-shot collect failed (exit code 2): the services that wait"), text
    assert "collectstatic: disk full" in text
    assert runtime.status()["after"].state == "created"  # never started


def test_a_service_restarted_after_its_first_healthy_look_fails_the_wait(
    stack: Stack, example_image: Image, captured: CapturedUi
) -> None:
    """Docker restarts it at once (unless-stopped): running again at every look, but its
    restart count moved."""
    code = "import sys, time; print('up'); time.sleep(4); print('dying'); sys.exit(1)"
    # No healthcheck: seen healthy at its first looks, however loaded the machine; then held
    # for longer than it lives, so its death is always within the hold.
    flaky = one_shot("flaky", code, restart="unless-stopped", extra=NO_HEALTHCHECK)
    held = {"flaky": {"probe": {"min_healthy": 60}}}
    runtime = stack.extended("flaky.yml", "services:\n" + flaky, example_image.name, held)
    assert runtime.one_shots() == set()
    runtime.up("r1", ["flaky"])
    try:
        with pytest.raises(DeployFailure) as failure:
            stack.wait_with(runtime, captured, services=["flaky"])
    finally:
        runtime.stop(["flaky"])
    text = failure.value.problem
    assert re.match(
        r"flaky was healthy at \d+\.\ds, then failed \d+\.\ds later: "
        r"restarted \((restart count 0 -> 1|it exited and is being started again)\)",
        text,
    ), text
    assert "dying" in text
