"""Which release the Celery workers run, proved with no code added to the app, with a task of
the app sent round, and with the one-line ``register_canary(app)``: real Redis, real workers.

The app is laid out as real ones are: a Celery app in a module of its own, no canary task.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from deploytools.config import EnvironmentSettings
from deploytools.hosts.local import LocalHost
from deploytools.probes.celery import STARTED, UNPROVED, CeleryCheckFailed, verify_celery
from deploytools.ui import Ui
from tests.support.cli import ROOT
from tests.support.example import APP_VARS
from tests.support.procs import stop, wait_until
from tests.support.redis_server import RedisServer
from tests.support.stackenv import make_settings

pytestmark = pytest.mark.integration

WORKER = '''\
import os

from celery import Celery

app = Celery(
    "shop",
    broker=os.environ["CELERY_BROKER_URL"],
    backend=os.environ["CELERY_RESULT_BACKEND"],
)


@app.task(name="shop.add")
def add(x, y):
    return x + y


@app.task(name="shop.fail")
def fail():
    raise RuntimeError("the shop is closed")
'''
# The app's one line, in a module of its own so that the test can run the app without it.
WITH_CANARY = WORKER + "from deploytools_canary import register_canary; register_canary(app)\n"
PING_TIMEOUT = 6.0  # a worker booting on a loaded 2-core machine still answers within it


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """The app's code, and deploytools_canary alone beside it (not the deploytools package)."""
    code = tmp_path / "shop"
    code.mkdir()
    (code / "shop_worker.py").write_text(WORKER)
    (code / "shop_canary.py").write_text(WITH_CANARY)
    shutil.copy2(ROOT / "deploytools_canary.py", code / "deploytools_canary.py")
    return code


def values(redis: RedisServer) -> dict[str, str]:
    return {"CELERY_BROKER_URL": redis.url(5), "CELERY_RESULT_BACKEND": redis.url(6)}


@contextmanager
def worker(app_dir: Path, redis: RedisServer, module: str, release: str) -> Iterator[str]:
    """``celery -A MODULE worker`` with RELEASE_ID in its environment, as deploytools starts
    it; yields its node name once it answers a ping."""
    from celery import Celery

    node = f"shop-{release}@localhost"
    env = {k: v for k, v in os.environ.items() if k not in APP_VARS and k != "PYTHONPATH"}
    env.update(values(redis), RELEASE_ID=release, PYTHONPATH=str(app_dir))
    argv = [sys.executable, "-m", "celery", "-A", module, "worker", "--pool", "solo"]
    argv += ["-n", node, "--without-gossip", "--without-mingle", "--loglevel", "INFO"]
    log = app_dir / f"worker-{release}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=app_dir, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    client = Celery("client", broker=redis.url(5), set_as_current=False)
    try:
        wait_until(
            lambda: bool(client.control.ping(destination=[node], timeout=0.5)),
            f"celery worker {node}", proc, log, timeout=60,
        )  # fmt: skip
        yield node
    finally:
        client.close()
        stop(proc, timeout=20)


def settings(tmp_path: Path, **celery: Any) -> EnvironmentSettings:
    base = {"required_tasks": ["shop.add"], "ping_timeout": PING_TIMEOUT, "app": "shop_worker:app"}
    return make_settings(tmp_path, celery={**base, **celery})


def captured() -> tuple[Ui, Callable[[], str]]:
    """A Ui, and what it said so far with its line wrapping undone."""
    err = io.StringIO()
    return Ui(stderr=err, stdout=io.StringIO()), lambda: " ".join(err.getvalue().split())


def test_without_a_canary_a_worker_that_started_after_the_start_is_the_new_release(
    tmp_path: Path, app_dir: Path, redis_server: RedisServer
) -> None:
    conf = settings(tmp_path)
    ui, said = captured()
    began = time.time()  # the deploy's start of r2 begins, then the worker starts
    with worker(app_dir, redis_server, "shop_worker", "r2") as node:
        report = verify_celery(
            conf, values(redis_server), "r2", ui, host=LocalHost(), since=began, previous="r1"
        )
        # celery.verify (no deploy start to compare with): it answers, its release unproved
        unproved = verify_celery(conf, values(redis_server), "r2", ui, host=LocalHost())

    assert report.workers == [node]
    assert report.proofs == {node: STARTED}
    assert "1 worker(s) answered, tasks registered, all on release r2" in said()
    assert unproved.proofs == {node: UNPROVED}
    assert (
        f"{node}: release not proved (no deploytools.canary task registered, and no deploy "
        "start to compare the worker's start with); to prove it, add `from deploytools_canary "
        "import register_canary; register_canary(app)` in shop_worker:app"
    ) in said()


def test_without_a_canary_a_worker_of_the_release_before_fails_naming_it(
    tmp_path: Path, app_dir: Path, redis_server: RedisServer
) -> None:
    conf = settings(tmp_path)
    ui, _ = captured()
    with worker(app_dir, redis_server, "shop_worker", "r1") as node:
        time.sleep(2.0)  # beyond the rounding of the worker's uptime to whole seconds
        began = time.time()  # the start of r2 began; r1's worker was left running
        with pytest.raises(CeleryCheckFailed) as failure:
            verify_celery(
                conf, values(redis_server), "r2", ui, host=LocalHost(), since=began, previous="r1"
            )

    assert failure.value.kind == "wrong-release"
    problem = failure.value.problem
    assert problem.startswith(
        "wrong release: expected 'r2', but a worker that started before the start of 'r2' "
        f"still runs 'r1': {node} started "
    ), problem
    assert problem.endswith("s before it")


def test_a_configured_task_of_the_app_round_trips_on_every_worker(
    tmp_path: Path, app_dir: Path, redis_server: RedisServer
) -> None:
    ui, said = captured()
    with worker(app_dir, redis_server, "shop_worker", "r2") as node:
        good = settings(tmp_path, roundtrip_task="shop.add", roundtrip_args=[2, 3])
        report = verify_celery(good, values(redis_server), "r2", ui, host=LocalHost(), since=0.0)
        with pytest.raises(CeleryCheckFailed) as failing:
            verify_celery(settings(tmp_path, roundtrip_task="shop.fail"), values(redis_server),
                          "r2", ui, host=LocalHost(), since=0.0)  # fmt: skip
        with pytest.raises(CeleryCheckFailed) as missing:
            verify_celery(settings(tmp_path, roundtrip_task="shop.gone"), values(redis_server),
                          "r2", ui, host=LocalHost(), since=0.0)  # fmt: skip

    assert report.workers == [node]
    assert "all on release r2, round trip done" in said()
    assert failing.value.kind == "round-trip-failed"
    assert failing.value.problem == (
        f"the round-trip task shop.fail failed on {node}: RuntimeError: the shop is closed"
    )
    assert missing.value.kind == "task-missing"
    assert missing.value.problem == f"task missing: {node} lacks shop.gone"


def test_with_the_one_line_helper_the_canary_says_the_release(
    tmp_path: Path, app_dir: Path, redis_server: RedisServer
) -> None:
    conf = settings(tmp_path)
    ui, _ = captured()
    with worker(app_dir, redis_server, "shop_canary", "r2") as node:
        # no start time needed
        report = verify_celery(conf, values(redis_server), "r2", ui, host=LocalHost())
        with pytest.raises(CeleryCheckFailed) as failure:
            verify_celery(conf, values(redis_server), "r3", ui, host=LocalHost())

    assert report.releases == {node: "r2"}
    assert report.proofs == {node: "canary"}
    assert failure.value.kind == "wrong-release"
    assert failure.value.problem == f"wrong release: expected 'r3', but {node} runs 'r2'"


def test_the_helper_pulls_in_nothing_of_deploytools_or_its_dependencies(app_dir: Path) -> None:
    heavy = ("deploytools", "pydantic", "rich", "invoke", "fabric", "httpx", "alembic", "redis")
    probe = (
        "import sys, deploytools_canary; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(app_dir)}
    run = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=app_dir, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert run.stdout.strip() == "[]"
