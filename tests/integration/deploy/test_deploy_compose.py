"""``invoke deploy`` and ``invoke rollback`` under docker compose, on a real engine.

Creating and removing containers is slow with the vfs storage driver (seconds each), so the
compose scenarios share one project and two releases: v1 (the first commit) and v2 (a marker in
the image and migration 0004). Each test brings the stack to the state it starts from with
``Stack.deployed`` / ``Stack.running`` (deploying a commit or rolling back only when the state
is not there yet), so any test runs alone or in any order: a deploy of v1, a dry run of v2 that
changes nothing, a deploy of v2 (with the migration), a rollback to v1 with its images present
(no build), and a rollback to v2 after its images were removed, rebuilt from a git worktree of
its tag while the operator's working tree is left alone. The failure scenarios run on the
process runtime (test_deploy_process.py, test_deploy_faults.py), where a deploy takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from deploytools.config import deep_merge
from tests.support import parts
from tests.support.cli import Run
from tests.support.deployproject import (
    COMPOSE_ENV,
    EXAMPLE,
    DeployProject,
    assert_undone_after_dying,
    compose_env,
    deploy_toml,
    dies_after_healthy,
    health,
    migration,
    unique,
)
from tests.support.processdeploy import WEB
from tests.support.procs import free_port
from tests.support.require import require

pytestmark = pytest.mark.integration

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

    def images(self) -> dict[str, str]:
        """Tag -> image id of this stack's images on the engine."""
        out = docker("images", self.image, "--no-trunc", "--format", "{{.Tag}} {{.ID}}")
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


@pytest.fixture(scope="module")
def stack(
    docker_engine: Any,
    postgres_server: Any,
    redis_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    require((EXAMPLE / "wheelhouse").is_dir(), "the example's wheelhouse", parts.PROVISION)
    project = DeployProject(tmp_path_factory.mktemp("deploy-compose") / "app", wheelhouse=True)
    built = Stack(project, unique("dtdeploy"), unique("deploytools-deploy"), str(free_port()))
    project.configure({ENV: compose_env(built.compose_project, built.image)})
    built.commits["v1"] = project.git("rev-parse", "HEAD").strip()
    project.init_env(
        ENV,
        {
            "HOST": "127.0.0.1",  # host networking: loopback only
            "PORT": built.port,
            "DATABASE_URL": postgres_server.create_database("deploy_compose"),
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


def _no_lock(stack: Stack) -> None:
    assert not (stack.project.state_dir(ENV) / "deploy.lock").exists()


def _steps(stack: Stack, kind: str = "step.done") -> list[dict[str, Any]]:
    return [e for e in stack.project.journal(ENV) if e["kind"] == kind]


def _world(stack: Stack) -> dict[str, Any]:
    """Everything a deploy could change: files, database, images, containers, git."""
    return {
        "files": stack.project.snapshot(),
        "database": stack.database(),
        "images": stack.images(),
        "containers": stack.containers(),
        "tags": stack.project.git("tag", "--list"),
        "head": stack.project.git("rev-parse", "HEAD"),
    }


def _user_columns(stack: Stack) -> list[str]:
    from sqlalchemy import create_engine, inspect

    url = stack.project.database_url(ENV).replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        return [c["name"] for c in inspect(engine).get_columns("users")]
    finally:
        engine.dispose()


def test_a_deploy_records_the_release_and_serves_it(stack: Stack) -> None:
    project = stack.project
    tag = stack.running("v1")
    run = stack.runs["v1"]  # the deploy that made it

    record = stack.release(tag)
    assert (record["action"], record["result"]) == ("deploy", "ok")
    assert record["sha"] == stack.commits["v1"]
    assert record["images"] == {f"{stack.image}:{tag}": stack.images()[tag]}
    assert record["revision"] == "0003"
    assert list(project.file(f"backups/{ENV}").glob(f"{record['backup']}*"))
    env_file = project.file(f"config/{ENV}.env").read_bytes()
    assert record["env_hash"] == hashlib.sha256(env_file).hexdigest()
    assert tag in project.release_tags()
    assert project.git("rev-list", "-n", "1", tag).strip() == stack.commits["v1"]
    status, body = health(stack.port)
    assert (status, body["release"], body["database"], body["redis"]) == (200, tag, "ok", "ok")
    image = f"{stack.image}:{tag}"
    assert stack.containers() == {
        "backend": (image, "running"),
        "celery-worker": (image, "running"),
    }
    journal = project.file(f".deploytools/{ENV}/journal.jsonl").read_text()
    for secret in ("SECRET_KEY", "OPENAI_API_KEY", "POSTGRES_PASSWORD"):
        assert project.env_values(ENV)[secret] not in run.output + journal
    _no_lock(stack)


def test_dry_run_of_the_next_release_changes_nothing(stack: Stack) -> None:
    stack.running("v1")
    sha = stack.commit("v2")
    before = _world(stack)

    run = stack.deploy("v2", "--dry-run")
    plan = stack.deploy("v2", "--dry-run", "--json")

    assert run.returncode == 0, run.output
    assert plan.returncode == 0, plan.output
    assert _world(stack) == before
    assert "dry run: nothing is changed" in run.output
    actions = {s["step"]: "\n".join(s["actions"]) for s in json.loads(plan.stdout)["plan"]}
    assert "alembic upgrade head: 0004" in actions["migrate"]
    assert f"release-{ENV}-" in actions["snapshot"] and sha[:7] in actions["snapshot"]
    assert "docker compose" in actions["build"] and " build" in actions["build"]
    assert "docker compose" in actions["start"] and " up " in actions["start"]


def test_a_deploy_with_a_migration_keeps_the_images_of_the_one_before(stack: Stack) -> None:
    v1 = stack.running("v1")
    v1_image = stack.images()[v1]

    run = stack.deploy("v2")

    assert run.returncode == 0, run.output
    tag = stack.tags["v2"]
    assert stack.release(tag)["revision"] == "0004"
    assert stack.database()[0] == "0004" and "nick" in _user_columns(stack)
    assert health(stack.port)[1]["release"] == tag
    assert stack.in_backend("cat", "/app/exampleapp/marker.txt") == "v2\n"
    assert stack.images()[v1] == v1_image  # what a rollback needs is still there
    _no_lock(stack)


def test_rollback_with_images_present_builds_nothing(stack: Stack) -> None:
    project, v1 = stack.project, stack.deployed("v1")
    stack.running("v2")
    images = stack.images()
    plan = project.rollback(ENV, v1, "--dry-run")
    assert plan.returncode == 0, plan.output
    assert f"images of {v1} are present: no build" in plan.output
    assert "alembic downgrade 0004 -> 0003" in plan.output
    assert stack.images() == images and stack.database()[0] == "0004"

    run = project.rollback(ENV, v1)

    assert run.returncode == 0, run.output
    assert stack.images() == images  # no image built, none removed
    prepared = [e for e in _steps(stack) if e["step"] == "prepare release"][-1]
    assert prepared["built"] is False
    record = project.releases(ENV)[-1]
    assert (record["action"], record["result"], record["tag"]) == ("rollback", "ok", v1)
    assert record["revision"] == "0003"
    assert stack.database()[0] == "0003" and "nick" not in _user_columns(stack)
    assert health(stack.port)[1]["release"] == v1
    image = f"{stack.image}:{v1}"
    assert stack.containers() == {
        "backend": (image, "running"),
        "celery-worker": (image, "running"),
    }
    assert stack.in_backend("ls", "/app/exampleapp").split().count("marker.txt") == 0
    _no_lock(stack)


def test_rollback_after_its_images_were_removed_builds_from_a_worktree(stack: Stack) -> None:
    project, v2 = stack.project, stack.deployed("v2")
    stack.running("v1")
    # The operator has moved on: a newer commit, an edited file, an untracked one.
    head = project.commit("v3: not deployed", {MARKER: "v3\n"})
    readme = project.file("example/README.md")
    readme.write_text(readme.read_text() + "\nlocal notes, not committed\n")
    project.file("notes.txt").write_text("untracked\n")
    status = project.git("status", "--porcelain")
    tree = {
        k: v
        for k, v in project.snapshot().items()
        if not k.startswith((".deploytools/", "backups/"))
    }
    docker("image", "rm", f"{stack.image}:{v2}")
    assert v2 not in stack.images()

    try:
        run = project.rollback(ENV, v2)

        assert run.returncode == 0, run.output
        prepared = [e for e in _steps(stack) if e["step"] == "prepare release"][-1]
        assert prepared["built"] is True
        assert prepared["images"] == {f"{stack.image}:{v2}": stack.images()[v2]}
        assert stack.in_backend("cat", "/app/exampleapp/marker.txt") == "v2\n"  # not v3
        assert health(stack.port)[1]["release"] == v2
        assert stack.database()[0] == "0004" and "nick" in _user_columns(stack)
        # The working tree is exactly as the operator left it; the worktree is gone.
        assert project.git("status", "--porcelain") == status
        assert project.git("rev-parse", "HEAD").strip() == head
        after = {
            k: v
            for k, v in project.snapshot().items()
            if not k.startswith((".deploytools/", "backups/"))
        }
        assert after == tree
        assert len(project.git("worktree", "list").splitlines()) == 1
        assert not (project.state_dir(ENV) / "worktrees" / v2).exists()
        _no_lock(stack)
    finally:
        project.git("checkout", "--", "example/README.md")
        project.file("notes.txt").unlink(missing_ok=True)


def test_a_backend_that_dies_after_its_first_healthy_answer_is_undone(stack: Stack) -> None:
    """Docker brings it back at once (restart: unless-stopped), so every look finds it running:
    its restart count says it crashed. Not recorded good; v1 serves again."""
    project, v1 = stack.project, stack.running("v1")
    project.git("checkout", "-q", "--detach", stack.commit("v1"))
    try:
        dying = dies_after_healthy(project.file(WEB).read_text(), 3.0)
        project.commit("a backend that dies 3 s after its first healthy answer", {WEB: dying})
        run = project.deploy(ENV)
    finally:
        project.git("checkout", "-q", "main")

    restarted = r"restarted \((restart count 0 -> 1|it exited and is being started again)\)"
    assert_undone_after_dying(project, ENV, run, v1, restarted)
    assert health(stack.port)[1]["release"] == v1
    image = f"{stack.image}:{v1}"
    assert stack.containers() == {
        "backend": (image, "running"),
        "celery-worker": (image, "running"),
    }
    _no_lock(stack)


# A service only the "extra" release has; it never passes the probe that release gives it.
EXTRA_SERVICE = """
  extra:
    image: ${IMAGE_NAME:-exampleapp}:${RELEASE_ID:-dev}
    network_mode: host
    command: ["python", "-c", "import time; time.sleep(3600)"]
    stop_signal: SIGKILL
    restart: unless-stopped
"""


def test_the_undo_of_a_release_that_added_a_service_starts_the_one_before_as_it_was(
    stack: Stack,
) -> None:
    project = stack.project
    v1 = stack.running("v1")
    env = deep_merge(
        compose_env(stack.compose_project, stack.image),
        {"services": {"extra": {"probe": {"url": "http://127.0.0.1:{PORT}/none", "timeout": 10}}}},
    )
    files = {
        "example/docker-compose.test.yml": (EXAMPLE / "docker-compose.test.yml").read_text()
        + EXTRA_SERVICE,
        "config/deploy.toml": deploy_toml({ENV: env}),
    }
    stack.commits["extra"] = stack.side_commit("v1", "extra: never healthy", files)

    run = stack.deploy("extra")

    assert run.returncode == 1, run.output
    assert "extra not healthy after 10s" in run.output
    assert f"undo start: using the compose files and config of {v1} (commit" in run.output
    assert f"release {v1} verified healthy again" in run.output
    assert "did NOT verify" not in run.output
    image = stack.image_of(v1)
    assert stack.containers() == {  # nothing of the extra service is left
        "backend": (image, "running"),
        "celery-worker": (image, "running"),
    }
    assert health(stack.port)[1]["release"] == v1
    failed = project.releases(ENV)[-1]
    assert (failed["result"], failed["sha"]) == ("failed", stack.commits["extra"])
    files = project.state_dir(ENV) / "releases" / v1 / "example"
    assert sorted(p.name for p in files.iterdir()) == sorted(
        ["docker-compose.prod.yml", "docker-compose.test.yml"]
    )
    assert "extra:" not in (files / "docker-compose.test.yml").read_text()
    _no_lock(stack)


def test_rollback_gives_a_removed_tag_back_to_its_image_and_builds_nothing(stack: Stack) -> None:
    project, v2 = stack.project, stack.deployed("v2")
    stack.running("v1")
    image, recorded = stack.image_of(v2), stack.recorded(v2)
    keep = stack.image_of(unique("keep"))
    docker("image", "tag", recorded, keep)  # another name holds the image ...
    docker("image", "rm", image)  # ... while the release's own tag is removed
    try:
        before = project.snapshot()
        plan = project.rollback(ENV, v2, "--dry-run", "--json")
        assert plan.returncode == 0, plan.output
        assert project.snapshot() == before  # the plan read v2's config and left nothing
        actions = {s["step"]: "\n".join(s["actions"]) for s in json.loads(plan.stdout)["plan"]}
        assert "worktree" not in actions["prepare release"]
        assert f"docker image tag {recorded} {image} (tag removed)" in actions["prepare release"]
        assert f"using the compose files and config of {v2}" in actions["prepare release"]

        run = project.rollback(ENV, v2)

        assert run.returncode == 0, run.output
        assert stack.images()[v2] == recorded  # the same image, not one built again
        assert stack.in_backend("cat", "/app/exampleapp/marker.txt") == "v2\n"
        assert health(stack.port)[1]["release"] == v2
        prepared = [e for e in _steps(stack) if e["step"] == "prepare release"][-1]
        assert (prepared["built"], prepared["retagged"]) == (False, [image])
        _no_lock(stack)
    finally:
        docker("image", "rm", keep)


def test_a_tag_moved_to_other_code_is_given_back_to_the_recorded_image(stack: Stack) -> None:
    project, v2 = stack.project, stack.deployed("v2")
    v1 = stack.running("v1")
    image, recorded = stack.image_of(v2), stack.recorded(v2)
    docker("image", "tag", stack.image_of(v1), image)  # v2's name on v1's code now

    run = project.rollback(ENV, v2)

    assert run.returncode == 0, run.output
    assert stack.in_backend("cat", "/app/exampleapp/marker.txt") == "v2\n"  # v2's code
    assert stack.images()[v2] == recorded
    prepared = [e for e in _steps(stack) if e["step"] == "prepare release"][-1]
    assert (prepared["built"], prepared["retagged"]) == (False, [image])
    _no_lock(stack)


def test_a_tag_moved_to_other_code_whose_image_is_gone_is_built_from_its_commit(
    stack: Stack,
) -> None:
    project, v2 = stack.project, stack.deployed("v2")
    v1 = stack.running("v1")
    image, recorded = stack.image_of(v2), stack.recorded(v2)
    docker("image", "tag", stack.image_of(v1), image)  # v2's name on v1's code now ...
    docker("image", "rm", recorded)  # ... and v2's own image gone

    run = project.rollback(ENV, v2)

    assert run.returncode == 0, run.output
    assert stack.in_backend("cat", "/app/exampleapp/marker.txt") == "v2\n"  # v2's code
    built = stack.images()[v2]  # may be the very image removed: same inputs, same id
    assert built != stack.images()[v1]
    prepared = [e for e in _steps(stack) if e["step"] == "prepare release"][-1]
    assert (prepared["built"], prepared["images"]) == (True, {image: built})
    rebuilt = [e for e in project.journal(ENV) if e["kind"] == "images"][-1]
    assert (rebuilt["tag"], rebuilt["sha"], rebuilt["images"]) == (
        v2, stack.commits["v2"], {image: built}
    )  # fmt: skip
    assert stack.release(v2, "rollback")["images"] == {image: built}
    assert stack.recorded(v2) == built  # what the next undo or rollback goes by
    _no_lock(stack)


def test_stack_build_of_an_older_release_builds_its_own_commit(stack: Stack) -> None:
    project, v2 = stack.project, stack.deployed("v2")
    before = stack.images()[v2]
    project.file(MARKER).write_text("newer, not committed\n")  # the tree has moved on
    try:
        run = project.invoke("stack.build", "--env", ENV, "--release", v2, timeout=900)

        assert run.returncode == 0, run.output
        built = stack.images()[v2]
        if built != before:  # the same inputs give the same image; other ones, an untagged one
            stack.garbage.append(before)
        assert stack.marker(v2) == "v2\n"  # its commit's code, not the working tree's
        assert stack.recorded(v2) == built
        rebuilt = [e for e in project.journal(ENV) if e["kind"] == "images"][-1]
        assert (rebuilt["tag"], rebuilt["by"]) == (v2, "stack.build")
        assert f"release {v2} built from its commit {stack.commits['v2'][:12]}" in run.output
        assert len(project.git("worktree", "list").splitlines()) == 1
    finally:
        project.git("checkout", "--", MARKER)
