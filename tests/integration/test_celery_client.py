"""celery.verify's client against real brokers: a Redis, a stopped one, and one that never answers.

A broker that is gone or hung must fail the check within ``celery.ping_timeout`` plus a small
margin, with one clear message, exit code 1 and no traceback; the wall-time bound below is
generous on purpose (it catches a hang, it is not a timing target).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deploytools.hosts.local import LocalHost
from deploytools.probes.celery import (
    REDIS_POLL,
    BrokerUrls,
    CeleryCheckFailed,
    _client,
    _prompt_replies,
    verify_celery,
)
from deploytools.ui import Ui
from tests.support.blackhole import black_hole
from tests.support.cli import ROOT, Run, TempProject
from tests.support.redis_server import RedisServer
from tests.support.stackenv import make_settings

pytestmark = pytest.mark.integration

PING_TIMEOUT = 2.0
UPPER_BOUND = PING_TIMEOUT + 10.0  # process start-up included; a hang is what this catches
SECRET = "Bh7-celery-broker-pw"
ENV = """
[environments.{name}]
env_file = "config/{name}.env"
env_example = "config/local.env.example"
runtime = "process"
celery = {{ ping_timeout = {ping_timeout} }}
"""


def test_a_redis_broker_is_polled_briefly_and_accepts_it(redis_server: RedisServer) -> None:
    with _client(BrokerUrls(redis_server.url(12), redis_server.url(13), {}), 2.0) as app:
        _prompt_replies(app)
        assert app.conf.broker_transport_options["polling_interval"] == REDIS_POLL
        # A fractional BRPOP timeout that the server refused would raise here.
        assert app.control.ping(timeout=0.2) == []


@pytest.mark.parametrize("fault", ["stop", "pause"])
def test_a_broker_lost_in_the_middle_of_the_ping_rounds_fails_the_check_soon(
    tmp_path: Path, fault: str
) -> None:
    """Stopped (refuses) or frozen (accepts, never answers) while the client already has a
    connection to it and no worker has answered yet."""
    conf = make_settings(tmp_path, celery={"ping_timeout": 4.0})
    ui = Ui(stderr=io.StringIO(), stdout=io.StringIO())
    lost: list[float] = []
    with RedisServer() as redis:
        url = f"redis://:{SECRET}@127.0.0.1:{redis.port}/0"

        def lose() -> None:
            lost.append(time.monotonic())
            getattr(redis, fault)()

        timer = threading.Timer(1.0, lose)
        timer.start()
        try:
            with pytest.raises(CeleryCheckFailed) as failure:
                verify_celery(conf, {"CELERY_BROKER_URL": url}, "r1", ui, host=LocalHost())
            took = time.monotonic() - lost[0]
        finally:
            timer.join()
    assert failure.value.kind == "broker-unreachable"
    # The client's own error (refused, timed out) or its step's time limit, whichever is first.
    assert failure.value.problem.startswith(("broker error", "broker did not answer within"))
    assert f"redis://:***@127.0.0.1:{redis.port}/0 (from local)" in failure.value.problem
    assert SECRET not in str(failure.value)
    assert took < 4.0 + 10.0, f"the check went on {took:.1f}s after the broker was lost"


def celery_verify(path: Path, broker: str) -> tuple[Run, float]:
    """``invoke celery.verify`` against ``broker`` in a copy of the project; (run, seconds)."""
    project = TempProject(path)
    with project.file("config/deploy.toml").open("a") as toml:
        toml.write(ENV.format(name="dead", ping_timeout=PING_TIMEOUT))
    project.write_env("dead", f"CELERY_BROKER_URL={broker}\n")
    started = time.monotonic()
    run = project.invoke("celery.verify", "--env", "dead", "--release", "r1", timeout=120)
    return run, time.monotonic() - started


def assert_failed_clearly(run: Run, took: float, message: str) -> None:
    assert run.returncode == 1, run.output
    assert message in run.stderr
    assert "Traceback" not in run.output
    assert SECRET not in run.output
    assert took < UPPER_BOUND, f"celery.verify took {took:.1f}s"


def test_a_broker_that_accepts_and_never_answers_fails_within_the_ping_timeout(
    tmp_path: Path,
) -> None:
    with black_hole() as hole:
        run, took = celery_verify(tmp_path, hole.url(password=SECRET))
        assert hole.held  # it got past the TCP connect: the silence was real
    shown = f"redis://:***@127.0.0.1:{hole.port}/0"
    assert_failed_clearly(
        run, took, f"broker did not answer within {PING_TIMEOUT:g}s: {shown} (from local)"
    )


def test_a_stopped_redis_fails_at_once_with_the_broker_named(tmp_path: Path) -> None:
    with RedisServer() as redis:
        redis.stop()
        run, took = celery_verify(tmp_path, f"redis://:{SECRET}@127.0.0.1:{redis.port}/0")
    shown = f"redis://:***@127.0.0.1:{redis.port}/0"
    assert_failed_clearly(run, took, f"broker unreachable: {shown} (from local)")


@pytest.fixture(scope="module")
def old_redis_py(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """redis-py 4.6, which today's kombu refuses (it needs 6.1): the mismatch of the trial,
    where an install upgraded kombu and left redis-py behind."""
    target = tmp_path_factory.mktemp("redis46")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         "redis==4.6.0"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return target


def test_a_client_library_mismatch_is_said_as_that_not_blamed_on_the_broker(
    tmp_path: Path, redis_server: RedisServer, old_redis_py: Path
) -> None:
    project = TempProject(tmp_path)
    with project.file("config/deploy.toml").open("a") as toml:
        toml.write(ENV.format(name="old", ping_timeout=PING_TIMEOUT))
    project.write_env("old", f"CELERY_BROKER_URL={redis_server.url(5)}\n")
    pythonpath = os.pathsep.join([str(old_redis_py), str(ROOT)])

    run = project.invoke(
        "celery.verify", "--env", "old", "--release", "r1", env={"PYTHONPATH": pythonpath}
    )

    assert run.returncode == 1 and "Traceback" not in run.output, run.output
    assert "deploytools' Celery client and its broker library do not match" in run.stderr
    assert "redis 4.6.0" in run.stderr and "requires redis-py" in run.stderr
    assert "broker URL" not in run.stderr  # the URL is right: not what the operator is told
