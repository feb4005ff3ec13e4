"""A deploy whose Celery broker hangs during ``verify celery`` (process runtime, real Redis).

The broker is a real redis-server frozen with SIGSTOP once the step has begun: its port still
accepts connections and nothing answers, as a hung broker behaves. The deploy must fail at
``verify celery`` within the check's bound, its undo (whose own Celery check meets the same
hung broker) must end too, the lock must be released and the previous release must serve.
The project and the Redis are this test's own: freezing them cannot touch another test.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploytools.config import deep_merge
from tests.support.deployproject import (
    PROCESS_ENV,
    DeployProject,
    health,
    process_env,
    stop_process,
)
from tests.support.procs import free_port
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

ENV = PROCESS_ENV
PING_TIMEOUT = 6.0  # a worker booting on a loaded 2-core machine still answers within it
# After the freeze: the check (ping_timeout + 3 s), stopping the new release (timeouts.stop),
# starting the previous one, its health, and its own Celery check (ping_timeout + 3 s). Generous:
# it catches a hang; it is not a timing target.
UPPER_BOUND = 120.0


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def project(tmp_path: Path, redis: RedisServer) -> Iterator[DeployProject]:
    proj = DeployProject(tmp_path / "app")
    proj.configure({ENV: deep_merge(process_env(), {"celery": {"ping_timeout": PING_TIMEOUT}})})
    values = {
        "PORT": str(free_port()),
        "CELERY_BROKER_URL": redis.url(0),
        "CELERY_RESULT_BACKEND": redis.url(1),
    }
    proj.init_env(ENV, values)
    try:
        yield proj
    finally:
        redis.resume()
        proj.invoke("stack.down", "--env", ENV)


def wait_for_step(
    proj: DeployProject, step: str, deploy: subprocess.Popen[str], timeout: float = 300
) -> None:
    deadline = time.monotonic() + timeout
    while not any(
        r["kind"] == "step.start" and r.get("step") == step for r in proj.journal(ENV)
    ):
        assert deploy.poll() is None, "the deploy ended before the step began"
        assert time.monotonic() < deadline, f"step {step!r} did not begin"
        time.sleep(0.02)


def test_a_broker_that_hangs_in_verify_celery_fails_the_deploy_and_undoes_it(
    project: DeployProject, redis: RedisServer
) -> None:
    first = project.deploy(ENV)
    assert first.returncode == 0, first.output
    previous = str(project.releases(ENV)[-1]["tag"])
    project.commit("v2", {"example/exampleapp/__init__.py": '"""exampleapp v2."""\n'})

    deploy = project.start("deploy", "--env", ENV)
    wait_for_step(project, "verify celery", deploy)
    redis.pause()
    frozen = time.monotonic()
    out, err = stop_process(deploy, timeout=300)
    took = time.monotonic() - frozen

    assert deploy.returncode == 1, out + err
    assert "deploy failed at step 'verify celery'" in err
    assert "broker did not answer" in err
    assert f"release {previous} started again" in err
    assert "the previous release did NOT verify: broker did not answer within" in err  # ended
    assert "Traceback" not in out + err
    assert took < UPPER_BOUND, f"the deploy took {took:.1f}s after the broker froze"
    failed = project.releases(ENV)[-1]
    assert failed["result"] == "failed" and failed["failed_step"] == "verify celery"
    assert not (project.state_dir(ENV) / "deploy.lock").exists()
    port = project.env_values(ENV)["PORT"]
    status, body = health(port)
    assert (status, body.get("release")) == (200, previous)
