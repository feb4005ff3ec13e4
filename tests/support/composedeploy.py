"""The example under docker compose as deploy tests drive it: one project, two releases.

Creating and removing containers takes a while (seconds each with the vfs storage driver, where
the kernel has no overlayfs: tests/support/docker_engine.py), so a test
module's compose scenarios share one project (the ``stack`` fixture of
tests/integration/deploy/conftest.py, one per module) and two releases: v1 (the first commit)
and v2 (a marker in the image and migration 0004). Each test brings the stack to the state it
starts from with ``Stack.deployed`` / ``Stack.running`` (deploying a commit or rolling back only
when the state is not there yet), so any test runs alone or in any order. Every module has its
own compose project, image name and port: modules run side by side on one engine.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import parts
from tests.support.cli import Run
from tests.support.deployproject import (
    COMPOSE_ENV,
    EXAMPLE,
    DeployProject,
    compose_env,
    health,
    migration,
    unique,
)
from tests.support.procs import free_port
from tests.support.require import require

ENV = COMPOSE_ENV
MARKER = "example/exampleapp/marker.txt"  # copied into the image: which commit was built
NEW_REVISION = "example/migrations/versions/0004_nick.py"


V2_FILES = {
    MARKER: "v2\n",
    NEW_REVISION: migration(
        "0004",
        'op.add_column("users", sa.Column("nick", sa.Text))',
        'op.drop_column("users", "nick")',
    ),
}


@dataclass
class Stack:
    project: DeployProject
    compose_project: str
    image: str
    port: str
    commits: dict[str, str] = field(default_factory=dict)  # v1, v2 -> sha
    tags: dict[str, str] = field(default_factory=dict)  # v1, v2 -> tag of its last deploy
    runs: dict[str, Run] = field(default_factory=dict)  # v1, v2 -> that deploy's CLI run
    garbage: list[str] = field(default_factory=list)  # image ids left untagged by a test

    def recover(self) -> None:
        """After a test: the lock a run it cut short left is released (``recover``)."""
        self.project.recover(ENV)

    def images(self) -> dict[str, str]:
        """Tag -> image id of this stack's images on the engine."""
        out = docker("images", self.image, "--no-trunc", "--format", "{{.Tag}} {{.ID}}")
        return dict(line.split() for line in out.splitlines() if line.strip())

    def started_at(self) -> dict[str, str]:
        """Service -> when its container started (a restart or recreation changes it)."""
        label = f"label=com.docker.compose.project={self.compose_project}"
        ids = docker("ps", "-q", "--filter", label).split()
        out = docker(
            "inspect", "-f", '{{index .Config.Labels "com.docker.compose.service"}} '
            "{{.State.StartedAt}}", *ids,
        )  # fmt: skip
        return dict(line.split() for line in out.splitlines() if line.strip())

    def containers(self) -> dict[str, tuple[str, str]]:
        """Service -> (image, state) of the compose project's containers."""
        label = f"label=com.docker.compose.project={self.compose_project}"
        out = docker(
            "ps", "-a", "--filter", label, "--format",
            '{{.Label "com.docker.compose.service"}} {{.Image}} {{.State}}',
        )  # fmt: skip
        rows = [line.split() for line in out.splitlines() if line.strip()]
        return {service: (image, state) for service, image, state in rows}

    def in_backend(self, *argv: str) -> str:
        label = f"label=com.docker.compose.project={self.compose_project}"
        service = "label=com.docker.compose.service=backend"
        name = docker("ps", "-q", "--filter", label, "--filter", service).split()[0]
        return docker("exec", name, *argv)

    def image_of(self, tag: str) -> str:
        return f"{self.image}:{tag}"

    def recorded(self, tag: str) -> str:
        """The image id the journal last recorded for ``tag``: its last good release record,
        or a later record of the images built again from its commit."""
        found = [
            e["images"][self.image_of(tag)]
            for e in self.project.journal(ENV)
            if e.get("tag") == tag
            and (e["kind"] == "images" or (e["kind"] == "release" and e["result"] == "ok"))
        ]
        return found[-1]

    def marker(self, tag: str) -> str:
        """The marker file in the image ``tag`` names ("" for v1, which has none)."""
        script = "cat /app/exampleapp/marker.txt 2>/dev/null || true"
        return docker("run", "--rm", "--network", "none", self.image_of(tag), "sh", "-c", script)

    def release(self, tag: str, action: str = "deploy") -> dict[str, Any]:
        found = [r for r in self.project.releases(ENV) if r["tag"] == tag and r["action"] == action]
        assert found, f"no {action} record for {tag}"
        return found[-1]

    def database(self) -> tuple[str | None, dict[str, int]]:
        return self.project.database(ENV)

    # -- bringing the stack to a test's starting point ---------------------------------------

    def commit(self, name: str) -> str:
        """The sha of v1 (the first commit) or v2 (committed on first need)."""
        if name not in self.commits:
            assert name == "v2"
            self.commits[name] = self.project.commit("v2: a nick column, and a marker", V2_FILES)
        return self.commits[name]

    def side_commit(self, base: str, message: str, files: dict[str, str]) -> str:
        """A commit on top of v1 or v2 that main never gets (the next v2 stays v1 + V2_FILES)."""
        self.project.git("checkout", "-q", "--detach", self.commit(base))
        try:
            return self.project.commit(message, files)
        finally:
            self.project.git("checkout", "-q", "main")

    def deploy(self, name: str, *args: str) -> Run:
        """``invoke deploy`` of v1's or v2's commit (checked out, then back to the branch)."""
        self.project.git("checkout", "-q", "--detach", self.commit(name))
        try:
            run = self.project.deploy(ENV, *args)
        finally:
            self.project.git("checkout", "-q", "main")
        if run.returncode == 0 and not args:
            self.tags[name], self.runs[name] = self.project.releases(ENV)[-1]["tag"], run
        return run

    def deployed(self, name: str) -> str:
        """The tag of a good release of v1 or v2, deployed now if there is none (v1 first:
        its code cannot run on v2's schema)."""
        if name == "v2":
            self.deployed("v1")
        if name not in self.tags:
            run = self.deploy(name)
            assert run.returncode == 0, run.output
        return self.tags[name]

    def running(self, name: str) -> str:
        """v1 or v2 serving (deployed, or rolled back to, if it is not)."""
        tag = self.deployed(name)
        if health(self.port)[1].get("release") != tag:
            run = self.project.rollback(ENV, tag)
            assert run.returncode == 0, run.output
        assert health(self.port)[1]["release"] == tag
        return tag


def docker(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


def no_lock(stack: Stack) -> None:
    assert not (stack.project.state_dir(ENV) / "deploy.lock").exists()


def steps_of(stack: Stack, kind: str = "step.done") -> list[dict[str, Any]]:
    return [e for e in stack.project.journal(ENV) if e["kind"] == kind]


def world(stack: Stack) -> dict[str, Any]:
    """Everything a deploy could change: files, database, images, containers, git."""
    return {
        "files": stack.project.snapshot(),
        "database": stack.database(),
        "images": stack.images(),
        "containers": stack.containers(),
        "tags": stack.project.git("tag", "--list"),
        "head": stack.project.git("rev-parse", "HEAD"),
    }


def user_columns(stack: Stack) -> list[str]:
    from sqlalchemy import create_engine, inspect

    url = stack.project.database_url(ENV).replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        return [c["name"] for c in inspect(engine).get_columns("users")]
    finally:
        engine.dispose()


@contextmanager
def compose_stack(postgres_server: Any, redis_server: Any, root: Path) -> Iterator[Stack]:
    """A new project under ``root`` configured for compose (nothing deployed yet); stopped and its
    images removed afterwards."""
    require((EXAMPLE / "wheelhouse").is_dir(), "the example's wheelhouse", parts.PROVISION)
    project = DeployProject(root / "app", wheelhouse=True)
    built = Stack(project, unique("dtdeploy"), unique("deploytools-deploy"), str(free_port()))
    project.configure({ENV: compose_env(built.compose_project, built.image)})
    built.commits["v1"] = project.git("rev-parse", "HEAD").strip()
    database = unique("deploy_compose").replace("-", "_")  # each module a database of its own
    project.init_env(
        ENV,
        {
            "HOST": "127.0.0.1",  # host networking: loopback only
            "PORT": built.port,
            "DATABASE_URL": postgres_server.create_database(database),
            "REDIS_URL": redis_server.url(8),
            "CELERY_BROKER_URL": redis_server.url(9),
            "CELERY_RESULT_BACKEND": redis_server.url(10),
            "OPENAI_API_KEY": "sk-test-" + secrets.token_urlsafe(24),
            "WEB_CONCURRENCY": "1",
            "CELERY_CONCURRENCY": "1",
        },
    )
    try:
        yield built
    finally:
        project.invoke("stack.down", "--env", ENV, timeout=600)
        for image in [f"{built.image}:{tag}" for tag in built.images()] + built.garbage:
            subprocess.run(
                ["docker", "image", "rm", "-f", image],
                capture_output=True,
                timeout=300,
                check=False,
            )
