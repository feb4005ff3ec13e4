"""Run the example application (example/exampleapp) as real processes for integration tests.

The app is started the way users and deploytools start it in process mode: ``uvicorn`` and
``celery -A exampleapp.worker worker`` with ``example/`` on PYTHONPATH and settings from the
environment. Every start waits a bounded time and every process is stopped on exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.procs import accepts, free_port, stop, wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DIR = ROOT / "example"

#: Settings the app reads; dropped from the inherited environment so each test states its own.
APP_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "CELERY_FS_ROOT",
    "RELEASE_ID",
    "HOST",
    "PORT",
    "WEB_CONCURRENCY",
    "CELERY_CONCURRENCY",
    "LOG_LEVEL",
    "HEALTH_TIMEOUT",
    "DEPLOYTOOLS_FLAGS_FILE",
)


def app_env(workdir: Path, **values: str) -> dict[str, str]:
    """Environment for an app process: this interpreter's PATH, example/ importable (and this
    checkout's deploytools, whose flag client the app imports), ``values``."""
    env = {
        k: v for k, v in os.environ.items() if k not in APP_VARS and not k.startswith("FEATURE_")
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(EXAMPLE_DIR), str(ROOT)])
    env["CELERY_FS_ROOT"] = str(workdir / "celery")
    env.update(values)
    return env


def _start(argv: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=log.parent,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def running_web(env: Mapping[str, str], workdir: Path) -> Iterator[tuple[str, Path]]:
    """uvicorn serving exampleapp.web:app on a free loopback port; yields (base URL, log)."""
    port = free_port()
    log = workdir / f"web-{port}.log"
    argv = [sys.executable, "-m", "uvicorn", "exampleapp.web:app"]
    proc = _start([*argv, "--host", "127.0.0.1", "--port", str(port)], env, log)
    try:
        wait_until(lambda: accepts(port), "exampleapp web", proc, log, timeout=30)
        yield f"http://127.0.0.1:{port}", log
    finally:
        stop(proc)


def celery_client(env: Mapping[str, str]) -> Any:
    """A Celery app configured from ``env`` exactly as the worker is, to talk to it."""
    from exampleapp.celeryconf import make_celery
    from exampleapp.settings import load

    return make_celery(load(dict(env)))


@contextmanager
def running_worker(env: Mapping[str, str], workdir: Path, name: str) -> Iterator[Any]:
    """A real ``celery worker`` process named ``name@localhost``; yields a client Celery app.

    Ready means the worker answered a ping through the broker, not merely that it started.
    """
    node = f"{name}@localhost"
    log = workdir / f"worker-{name}.log"
    argv = ["celery", "-A", "exampleapp.worker", "worker", "--loglevel", "INFO"]
    argv += ["--concurrency", "1", "-n", node, "--without-gossip", "--without-mingle"]
    proc = _start([sys.executable, "-m", *argv], env, log)
    client = celery_client(env)
    try:

        def answers() -> bool:
            return bool(client.control.ping(destination=[node], timeout=1.0))

        wait_until(answers, f"celery worker {node}", proc, log, timeout=60)
        yield client
    finally:
        client.close()
        stop(proc, timeout=20)


COMPOSE_FILES = ("docker-compose.prod.yml", "docker-compose.test.yml")
SERVICES = ("backend", "celery-worker")


class ComposeStack:
    """``docker compose -p NAME -f prod -f test ...`` for one uniquely named project."""

    def __init__(
        self, docker: str, env_file: Path, release: str, flags_dir: Path | None = None
    ) -> None:
        self.project = f"exampletest-{uuid.uuid4().hex[:8]}"
        self.release = release
        self._argv = [docker, "compose", "-p", self.project]
        for name in COMPOSE_FILES:
            self._argv += ["-f", str(EXAMPLE_DIR / name)]
        self._env = {
            **os.environ,
            "ENV_FILE": str(env_file),
            "RELEASE_ID": release,
            "IMAGE_NAME": "deploytools-test-exampleapp",
        }
        if flags_dir is not None:  # else the compose file's default, example/.flags
            self._env["FLAGS_DIR"] = str(flags_dir)

    @property
    def image(self) -> str:
        return f"deploytools-test-exampleapp:{self.release}"

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._argv, *args],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def check(self, *args: str, timeout: float = 300) -> str:
        done = self.run(*args, timeout=timeout)
        if done.returncode != 0:
            logs = self.run("logs", "--no-color", "--tail", "40", timeout=60).stdout
            raise AssertionError(
                f"docker compose {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stderr[-3000:]}\n--- service logs ---\n{logs[-4000:]}"
            )
        return done.stdout

    def health(self) -> dict[str, str]:
        """Service name -> health, from ``ps --format json`` (JSON Lines or one array)."""
        out = self.check("ps", "--all", "--format", "json", timeout=60).strip()
        rows = json.loads(out) if out.startswith("[") else [json.loads(x) for x in out.splitlines()]
        return {row["Service"]: row.get("Health", "") for row in rows}
