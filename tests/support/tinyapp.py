"""A tiny compose app deployed by the real CLI on an engine of the test's own.

For the scenarios that stop or fill a Docker engine (``ExtraEngine``): an image ``FROM
scratch`` with busybox-static (built in a second, a few MB, no base image to load), two
services (``web``: ``busybox httpd`` answering ``/health`` with the release it runs; ``worker``:
a loop), SQLite for the database, no Celery. What each service does lives in the image
(``tiny/web.sh``, ``tiny/worker.sh``), so a release that misbehaves is a commit of its own and
an undo to the release before runs that release's scripts again.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from deploytools.config import deep_merge
from tests.support import parts
from tests.support.cli import Run
from tests.support.deployproject import (
    DEPLOY_TIMEOUT,
    PROCESS_ENV,
    DeployProject,
    health,
    repo_config,
    unique,
)
from tests.support.extra_engine import ExtraEngine
from tests.support.procs import free_port
from tests.support.require import require

ENV = PROCESS_ENV  # "local": the env rules that need no server (SQLite, no Redis, no Celery)
BUSYBOX = Path("/bin/busybox")  # busybox-static: it must run FROM scratch

DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY web.sh worker.sh /app/
"""
COMPOSE = """\
x-tiny: &tiny
  image: ${IMAGE_NAME}:${RELEASE_ID}
  env_file: ${ENV_FILE}
  environment:
    RELEASE_ID: ${RELEASE_ID}
  network_mode: host
  init: true  # SIGTERM stops them at once: a stopping engine does not wait for them
  restart: unless-stopped

services:
  web:
    <<: *tiny
    build:
      context: tiny
      network: none
    command: ["sh", "/app/web.sh"]
  worker:
    <<: *tiny
    command: ["sh", "/app/worker.sh"]
    tmpfs: ["/scratch:size=1m"]
"""
WEB = """\
mkdir -p /www
printf '{"status": "healthy", "release": "%s"}' "$RELEASE_ID" > /www/health
exec httpd -f -p "127.0.0.1:$PORT" -h /www
"""
WORKER = "exec sleep 2147483647\n"


class TinySite:
    """The tiny app's project, configured for ``engine``; ``cli`` runs ``invoke`` against it."""

    def __init__(self, path: Path, engine: ExtraEngine, **settings: Any) -> None:
        require(BUSYBOX.is_file(), "busybox-static", parts.PROVISION)
        self.engine = engine
        self.port = free_port()
        self.image = unique("dt-tiny")
        self.compose_project = unique("dt-tiny")
        self.project = DeployProject(path)
        for name, text in {"Dockerfile": DOCKERFILE, "web.sh": WEB, "worker.sh": WORKER}.items():
            self.project.file(f"example/tiny/{name}").parent.mkdir(parents=True, exist_ok=True)
            self.project.file(f"example/tiny/{name}").write_text(text)
        shutil.copy2(BUSYBOX, self.project.file("example/tiny/busybox"))
        # No schema: alembic has nothing to run (a busybox image could not run it).
        for revision in self.project.file("example/migrations/versions").glob("*.py"):
            revision.unlink()
        self.project.file("example/docker-compose.tiny.yml").write_text(COMPOSE)
        env = {
            "env_file": f"config/{ENV}.env",
            "env_example": f"config/{ENV}.env.example",
            "runtime": "compose",
            "compose": {
                "project_name": self.compose_project,
                "directory": "example",
                "files": ["docker-compose.tiny.yml"],
                "image_name": self.image,
            },
            "services": {
                "web": {
                    "probe": {
                        "url": "http://127.0.0.1:{PORT}/health",
                        "json_fields": {"status": "healthy", "release": "{RELEASE_ID}"},
                        "timeout": 30,
                    }
                },
                "worker": {"probe": {"timeout": 30}},
            },
            "database": {"migrate_service": "web"},
            "timeouts": {"stop": 2, "command": 300},
        }
        defaults = {k: v for k, v in repo_config()["defaults"].items() if k != "celery"}
        self.project.configure({ENV: deep_merge(env, settings)}, defaults=defaults)
        self.project.init_env(ENV, {"PORT": str(self.port)})

    # -- the CLI --------------------------------------------------------------------------------

    def cli(self, *args: str) -> Run:
        return self.project.invoke(*args, env=self.engine.env, timeout=DEPLOY_TIMEOUT)

    def deploy(self) -> Run:
        return self.cli("deploy", "--env", ENV)

    def start_deploy(self) -> subprocess.Popen[str]:
        """``invoke deploy`` in the background (to act on the engine while it runs)."""
        return self.project.start("deploy", "--env", ENV, env=self.engine.env)

    def deployed(self) -> str:
        """Deploy the current commit; its tag, once it serves."""
        run = self.deploy()
        assert run.returncode == 0, run.output
        tag = str(self.project.releases(ENV)[-1]["tag"])
        assert self.serves() == tag
        return tag

    def release(self, message: str, web: str = WEB, worker: str = WORKER) -> str:
        """Commit a release whose image differs (its scripts, and a marker of ``message``)."""
        return self.project.commit(
            message,
            {
                "example/tiny/web.sh": f"# {message}\n{web}",
                "example/tiny/worker.sh": f"# {message}\n{worker}",
            },
        )

    # -- looking at it -------------------------------------------------------------------------

    def serves(self) -> str | None:
        """The release /health names, None when nothing healthy answers."""
        status, body = health(self.port)
        return str(body["release"]) if status == 200 and body.get("status") == "healthy" else None

    def containers(self) -> dict[str, tuple[str, str, str]]:
        """Service -> (image, state, container id) of the project's containers."""
        label = f"label=com.docker.compose.project={self.compose_project}"
        fmt = '{{.Label "com.docker.compose.service"}} {{.Image}} {{.State}} {{.ID}}'
        out = self.engine.check("ps", "-a", "--no-trunc", "--filter", label, "--format", fmt)
        rows = [line.split() for line in out.splitlines() if line.strip()]
        return {service: (image, state, cid) for service, image, state, cid in rows}

    def journal_since(self, count: int) -> list[dict[str, Any]]:
        return self.project.journal(ENV)[count:]

    def marked_running(self) -> tuple[list[str], str]:
        """The tags `invoke releases` marks with * (running), and what it said besides."""
        run = self.cli("releases", "--env", ENV)
        assert run.returncode == 0, run.output
        return re.findall(r"│\s*\*\s*│\s*(\S+)", run.stdout), " ".join(run.stderr.split())
