"""A release's images by id, on a real engine: a removed tag given back to its image, a tag moved
to other code never used under the release's name, and ``stack.build`` of an older release
from its own commit.
"""

from __future__ import annotations

import json

import pytest

from tests.support.composedeploy import ENV, MARKER, Stack, docker, no_lock, steps_of
from tests.support.deployproject import health, unique

pytestmark = pytest.mark.integration


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
        prepared = [e for e in steps_of(stack) if e["step"] == "prepare release"][-1]
        assert (prepared["built"], prepared["retagged"]) == (False, [image])
        no_lock(stack)
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
    prepared = [e for e in steps_of(stack) if e["step"] == "prepare release"][-1]
    assert (prepared["built"], prepared["retagged"]) == (False, [image])
    no_lock(stack)


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
    prepared = [e for e in steps_of(stack) if e["step"] == "prepare release"][-1]
    assert (prepared["built"], prepared["images"]) == (True, {image: built})
    rebuilt = [e for e in project.journal(ENV) if e["kind"] == "images"][-1]
    assert (rebuilt["tag"], rebuilt["sha"], rebuilt["images"]) == (
        v2, stack.commits["v2"], {image: built}
    )  # fmt: skip
    assert stack.release(v2, "rollback")["images"] == {image: built}
    assert stack.recorded(v2) == built  # what the next undo or rollback goes by
    no_lock(stack)


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
