"""``invoke deploy`` and ``invoke rollback`` under docker compose, on a real engine; and the
flags of the running stack (its state directory mounted read-only).

The example's v1 and v2 (tests/support/composedeploy.py): a deploy of v1, a dry run of v2 that
changes nothing, a deploy of v2 (with the migration), a rollback to v1 with its images present
(no build), and a rollback to v2 after its images were removed, rebuilt from a git worktree of
its tag while the operator's working tree is left alone.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.support.composedeploy import (
    ENV,
    MARKER,
    Stack,
    docker,
    no_lock,
    steps_of,
    user_columns,
    world,
)
from tests.support.deployproject import health
from tests.support.example import celery_client
from tests.support.exampleflags import checkout, wait_for

pytestmark = pytest.mark.integration


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
    no_lock(stack)


def test_dry_run_of_the_next_release_changes_nothing(stack: Stack) -> None:
    stack.running("v1")
    sha = stack.commit("v2")
    before = world(stack)

    run = stack.deploy("v2", "--dry-run")
    plan = stack.deploy("v2", "--dry-run", "--json")

    assert run.returncode == 0, run.output
    assert plan.returncode == 0, plan.output
    assert world(stack) == before
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
    assert stack.database()[0] == "0004" and "nick" in user_columns(stack)
    assert health(stack.port)[1]["release"] == tag
    assert stack.in_backend("cat", "/app/exampleapp/marker.txt") == "v2\n"
    assert stack.images()[v1] == v1_image  # what a rollback needs is still there
    no_lock(stack)


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
    prepared = [e for e in steps_of(stack) if e["step"] == "prepare release"][-1]
    assert prepared["built"] is False
    record = project.releases(ENV)[-1]
    assert (record["action"], record["result"], record["tag"]) == ("rollback", "ok", v1)
    assert record["revision"] == "0003"
    assert stack.database()[0] == "0003" and "nick" not in user_columns(stack)
    assert health(stack.port)[1]["release"] == v1
    image = f"{stack.image}:{v1}"
    assert stack.containers() == {
        "backend": (image, "running"),
        "celery-worker": (image, "running"),
    }
    assert stack.in_backend("ls", "/app/exampleapp").split().count("marker.txt") == 0
    no_lock(stack)


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
        prepared = [e for e in steps_of(stack) if e["step"] == "prepare release"][-1]
        assert prepared["built"] is True
        assert prepared["images"] == {f"{stack.image}:{v2}": stack.images()[v2]}
        assert stack.in_backend("cat", "/app/exampleapp/marker.txt") == "v2\n"  # not v3
        assert health(stack.port)[1]["release"] == v2
        assert stack.database()[0] == "0004" and "nick" in user_columns(stack)
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
        no_lock(stack)
    finally:
        project.git("checkout", "--", "example/README.md")
        project.file("notes.txt").unlink(missing_ok=True)


def test_the_running_backend_and_worker_follow_a_kill_without_a_restart(stack: Stack) -> None:
    tag = stack.running("v1")
    project = stack.project
    started = stack.started_at()
    on = project.invoke("flags.set", "new_checkout", "on", "--env", ENV)
    assert on.returncode == 0, on.output
    base = f"http://127.0.0.1:{stack.port}"
    wait_for(lambda: checkout(base, "user-1"), "new")
    worker = celery_client(project.env_values(ENV))
    assert worker.send_task("exampleapp.checkout_variant", args=["user-1"]).get(timeout=30) == "new"

    kill = project.invoke("flags.kill", "new_checkout", "--env", ENV)

    assert kill.returncode == 0, kill.output
    wait_for(lambda: checkout(base, "user-1"), "classic")
    wait_for(
        lambda: worker.send_task("exampleapp.checkout_variant", args=["user-1"]).get(timeout=30),
        "classic",
    )
    assert stack.started_at() == started and len(started) == 2
    assert stack.running("v1") == tag
