"""Kill-switch propagation: from ``invoke flags.kill`` starting to the running backend no
longer serving the feature, on the process runtime and on compose.

The example app, in a temporary git copy of this checkout: on the process runtime
(``local``: SQLite, Celery's filesystem broker) started by ``stack.up``, and on the compose
runtime (production file + the test override, host network, the flag directory mounted
read-only) against PostgreSQL and Redis started here. Each run first turns the flag on with
``flags.set`` and waits until GET /checkout gives user-1 the new checkout; then a thread polls
/checkout every 10 ms while ``invoke flags.kill new_checkout`` runs as an operator would run
it; the time is from the command's start to the first "classic" answer. Also shown: the
command's own wall time (Python start, config, lock, journal, write, exit).

Target: p95 <= 0.5 s (the app's client looks at the file at most every 200 ms).

Run as root after ``python tests/provision.py``:
``.venv/bin/python bench/flags_kill.py [--runs 20] [--runtime process|compose|both]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.cli import TempProject  # noqa: E402
from tests.support.deployproject import (  # noqa: E402
    COMPOSE_ENV,
    PROCESS_ENV,
    DeployProject,
    process_env,
)
from tests.support.procs import service_port  # noqa: E402

POLL = 0.01
WAIT = 10.0  # s: at most this long for an answer to change


def checkout(client: httpx.Client, port: str) -> str:
    response = client.get(f"http://127.0.0.1:{port}/checkout", params={"user": "user-1"})
    return str(response.json()["checkout"])


def until(answer: Callable[[], str], expected: str, since: float) -> float:
    """Poll ``answer`` every POLL s until it is ``expected``; the time since ``since``."""
    while answer() != expected:
        if time.monotonic() - since > WAIT:
            raise RuntimeError(f"no {expected!r} after {WAIT} s")
        time.sleep(POLL)
    return time.monotonic() - since


def measure(
    project: TempProject, env: str, port: str, runs: int
) -> tuple[list[float], list[float]]:
    """Per run: (seen off, the kill command's wall time), in seconds."""
    seen: list[float] = []
    command = []
    with httpx.Client(trust_env=False, timeout=5.0) as client:

        def answer() -> str:
            return checkout(client, port)

        for _ in range(runs):
            on = project.invoke("flags.set", "new_checkout", "on", "--env", env)
            assert on.returncode == 0, on.output
            until(answer, "new", time.monotonic())
            time.sleep(0.3)  # the client's last look is at a random point of its 200 ms
            before = len(seen)
            started = time.monotonic()
            watcher = threading.Thread(
                target=lambda t=started: seen.append(until(answer, "classic", t))
            )
            watcher.start()
            kill = project.invoke("flags.kill", "new_checkout", "--env", env)
            command.append(time.monotonic() - started)
            watcher.join(WAIT + 1)
            assert kill.returncode == 0 and len(seen) > before, kill.output
    return seen, command


def report(name: str, seen: list[float], command: list[float]) -> None:
    p95 = statistics.quantiles(seen, n=20)[-1] if len(seen) >= 2 else seen[0]
    print(
        f"{name:8} runs {len(seen):3}  seen off: median {statistics.median(seen):.3f} s, "
        f"p95 {p95:.3f} s, max {max(seen):.3f} s  |  flags.kill wall time: median "
        f"{statistics.median(command):.3f} s",
        flush=True,
    )


def process(tmp: Path, runs: int) -> None:
    project = DeployProject(tmp / "process" / "app")
    project.configure({PROCESS_ENV: process_env()})
    port = str(service_port())
    project.init_env(PROCESS_ENV, {"PORT": port})
    try:
        project.check("stack.up", "--env", PROCESS_ENV, "--wait")
        report("process", *measure(project, PROCESS_ENV, port, runs))
    finally:
        project.invoke("stack.down", "--env", PROCESS_ENV)


def compose(tmp: Path, runs: int) -> None:
    from tests.support.composedeploy import compose_stack
    from tests.support.docker_engine import DockerEngine
    from tests.support.postgres_server import PostgresServer
    from tests.support.redis_server import RedisServer

    with ExitStack() as stack:
        stack.enter_context(DockerEngine())
        pg = stack.enter_context(PostgresServer())
        redis = stack.enter_context(RedisServer())
        built = stack.enter_context(compose_stack(pg, redis, tmp / "compose"))
        built.project.check("stack.up", "--env", COMPOSE_ENV, "--build", "--wait")
        report("compose", *measure(built.project, COMPOSE_ENV, built.port, runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--runtime", choices=["process", "compose", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-flags-") as tmp:
        if args.runtime in ("process", "both"):
            process(Path(tmp), args.runs)
        if args.runtime in ("compose", "both"):
            compose(Path(tmp), args.runs)


if __name__ == "__main__":
    main()
