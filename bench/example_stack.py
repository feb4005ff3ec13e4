"""How long the example image takes to build and the example stack to come up and go down.

Builds with the production compose file plus the test override (local base image, wheelhouse):
cold (``--no-cache``), warm (nothing changed), and for a new release id (what every deploy
does); then ``up --wait`` until backend and celery-worker are healthy, and ``down``. Prints
seconds per phase and the image size. Starts Postgres, Redis and (if none answers) dockerd.
Run as root after provisioning: `python bench/example_stack.py`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "example"))

from tests.support.docker_engine import DockerEngine
from tests.support.example import ComposeStack
from tests.support.postgres_server import PostgresServer
from tests.support.procs import free_port
from tests.support.redis_server import RedisServer


def timed(label: str, stack: ComposeStack, *args: str) -> None:
    started = time.perf_counter()
    stack.check(*args, timeout=1200)
    print(f"{label:<34} {time.perf_counter() - started:6.1f}s", flush=True)


def image_size(docker: str, image: str) -> str:
    out = subprocess.run(
        [docker, "image", "ls", image, "--format", "{{.Size}}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


def main() -> None:
    with DockerEngine() as engine, PostgresServer() as pg, RedisServer() as redis:
        with tempfile.TemporaryDirectory() as tmp:
            env_file = Path(tmp, "bench.env")
            env_file.write_text(
                f"DATABASE_URL={pg.create_database('exampleapp_bench')}\n"
                f"REDIS_URL={redis.url(0)}\nHOST=127.0.0.1\nPORT={free_port()}\n"
            )
            first = ComposeStack(engine.docker, env_file, release="bench1")
            second = ComposeStack(engine.docker, env_file, release="bench2")
            try:
                timed("build, cold (--no-cache)", first, "build", "--no-cache")
                timed("build, warm (nothing changed)", first, "build")
                timed("build, warm (new release id)", second, "build")
                print(f"{'image size':<34} {image_size(engine.docker, first.image):>7}")
                timed("up --wait (backend, celery-worker)", second, "up", "-d", "--wait")
                timed("down (stop and remove containers)", second, "down", "--timeout", "30")
            finally:
                for stack in (first, second):
                    stack.run("down", "--rmi", "all", "--timeout", "30")


if __name__ == "__main__":
    main()
