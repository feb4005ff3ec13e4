"""Celery verification time with a live worker: ping, worker count, tasks, canary round trip.

A real example-app worker (``celery -A exampleapp.worker worker``) runs under the process
runtime, against a throwaway redis-server and then against the filesystem broker of local mode.
Each ``verify_celery`` run is timed end to end (client set-up included). Target with Redis:
<= 1.5 s. Run as a user that can start redis-server: ``python bench/celery_verify.py [RUNS]``.
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORKER = ["{python}", "-m", "celery", "-A", "exampleapp.worker", "worker", "--loglevel", "INFO",
          "--concurrency", "1", "-n", "bench@%h", "--without-gossip",
          "--without-mingle"]  # fmt: skip


def timed_runs(values: dict[str, str], runs: int, tmp: str) -> list[float]:
    from deploytools.config import EnvironmentSettings
    from deploytools.hosts.local import LocalHost
    from deploytools.probes.celery import verify_celery
    from deploytools.runtime.process import ProcessRuntime
    from deploytools.ui import Ui

    settings = EnvironmentSettings.model_validate(
        {
            "name": "bench",
            "env_file": f"{tmp}/bench.env",
            "env_example": f"{tmp}/bench.env",
            "runtime": "process",
            "app_dir": str(ROOT / "example"),
            "state_dir": tmp,
            "services": {"celery-worker": {"command": WORKER}},
            "celery": {"required_tasks": ["exampleapp.add"], "ping_timeout": 5},
        }
    )
    runtime = ProcessRuntime(settings, LocalHost(), values)
    ui = Ui(stderr=io.StringIO(), stdout=io.StringIO())
    runtime.up("bench-r1")
    try:
        deadline = time.monotonic() + 60
        while True:  # the worker's first answer (start-up is not what we measure)
            try:
                verify_celery(settings, values, "bench-r1", ui, host=LocalHost())
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            verify_celery(settings, values, "bench-r1", ui, host=LocalHost())
            times.append(time.perf_counter() - started)
        return times
    finally:
        runtime.down()


def report(label: str, times: list[float]) -> None:
    times = sorted(times)
    p95 = times[max(0, round(0.95 * len(times)) - 1)]
    print(
        f"{label:<22} median {statistics.median(times):.3f}s  p95 {p95:.3f}s  "
        f"max {times[-1]:.3f}s  ({len(times)} runs)"
    )


def main(runs: int) -> None:
    from tests.support.redis_server import RedisServer

    print("celery.verify (ping, count, registered tasks, per-worker canary), 1 live worker:")
    with RedisServer() as redis, tempfile.TemporaryDirectory(prefix="celery-bench-") as tmp:
        url = redis.url(0)
        values = {
            "DATABASE_URL": f"sqlite:///{tmp}/a.db",
            "REDIS_URL": url,
            "CELERY_BROKER_URL": url,
        }
        report("redis broker", timed_runs(values, runs, tmp))
    with tempfile.TemporaryDirectory(prefix="celery-bench-") as tmp:
        values = {"DATABASE_URL": f"sqlite:///{tmp}/a.db", "CELERY_FS_ROOT": f"{tmp}/celery"}
        report("filesystem (local)", timed_runs(values, max(3, runs // 4), tmp))
    print("target with Redis: <= 1.500s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
