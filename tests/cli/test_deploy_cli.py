"""Bad input to ``deploy``, ``rollback`` and their companions: a clear message, exit code 2, no
traceback, and nothing changed (files, git tags, the journal). The real CLI runs in a project
copy that is a git repository; no server is needed because every case is refused before the
lock is taken. (A rollback to the release already running needs a real release: it is in
tests/integration/deploy/test_deploy_process.py.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Run
from tests.support.deployproject import PROCESS_ENV, DeployProject, process_env
from tests.support.procs import free_port

ENV = PROCESS_ENV


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> DeployProject:
    proj = DeployProject(tmp_path_factory.mktemp("deploy-cli") / "app")
    proj.configure({ENV: process_env()})
    proj.init_env(ENV, {"PORT": str(free_port())})  # never a port something else serves
    proj.git("tag", "v0.9")  # a git tag that no deploy recorded
    return proj


def _state(project: DeployProject) -> dict[str, Any]:
    return {
        "files": project.snapshot(),
        "tags": project.git("tag", "--list"),
        "status": project.git("status", "--porcelain"),
        "head": project.git("rev-parse", "HEAD"),
    }


def refused(project: DeployProject, *args: str) -> Run:
    before = _state(project)
    run = project.invoke(*args)
    assert run.returncode == 2, run.output
    assert "Traceback" not in run.output, run.output
    assert run.stderr.startswith("error: "), run.stderr
    assert "\n  fix: " in run.stderr, run.stderr
    assert _state(project) == before
    assert not project.state_dir(ENV).exists()  # no lock, no journal: nothing started
    return run


def test_rollback_to_a_tag_that_does_not_exist_lists_what_there_is(
    project: DeployProject,
) -> None:
    run = refused(project, "rollback", "--env", ENV, "--tag", "release-local-20990101T000000Z-abc")
    assert "'release-local-20990101T000000Z-abc' is not a git tag" in run.stderr
    assert "roll back to one of: none yet (deploy first)" in run.stderr


def test_rollback_to_a_git_tag_without_a_recorded_release(project: DeployProject) -> None:
    run = refused(project, "rollback", "--env", ENV, "--tag", "v0.9")
    assert "'v0.9' has no recorded successful release in environment local" in run.stderr
    assert "none yet (deploy first)" in run.stderr


@pytest.mark.parametrize(
    "tag",
    [
        "$(id)",
        "`id`",
        "a;rm -rf /",
        "a b",
        "release..1",
        "x.lock",
        "-x",
        ".hidden",
        "../../etc/passwd",
        "tag~1",
        "tag:x",
        "@{1}",
        "t" * 200,
    ],
)
def test_rollback_refuses_tags_git_would_refuse(project: DeployProject, tag: str) -> None:
    run = refused(project, "rollback", "--env", ENV, "--tag", tag)
    assert "is not a valid tag name" in run.stderr
    assert "git check-ref-format" in run.stderr


def test_rollback_without_a_tag(project: DeployProject) -> None:
    run = refused(project, "rollback", "--env", ENV)
    assert "no --tag given" in run.stderr


@pytest.mark.parametrize("env", ["prod;rm", "$(id)", "../local"])
@pytest.mark.parametrize(
    "command",
    [("deploy",), ("deploy", "--dry-run"), ("rollback", "--tag", "v0.9"), ("releases",)],
)
def test_environment_names_with_shell_metacharacters(
    project: DeployProject, env: str, command: tuple[str, ...]
) -> None:
    run = refused(project, *command, "--env", env)
    assert f"environment name {env!r} is not allowed" in run.stderr


def test_an_empty_environment_name_is_refused_not_defaulted(project: DeployProject) -> None:
    # `--env "$DEPLOY_ENV"` with the variable unset must not deploy the default environment
    run = refused(project, "deploy", "--env", "")
    assert "no environment given (--env is empty)" in run.stderr


def test_an_environment_with_no_release_lists_none(project: DeployProject) -> None:
    before = _state(project)
    run = project.invoke("releases", "--env", ENV, "--json")
    assert run.returncode == 0, run.output
    assert run.stdout.strip() == "[]"
    assert _state(project) == before


def test_unknown_environment_names_the_known_ones(project: DeployProject) -> None:
    run = refused(project, "deploy", "--env", "staging")
    assert "unknown environment 'staging'" in run.stderr
    assert "use one of: local" in run.stderr


def test_lock_release_needs_force_and_a_lock(project: DeployProject) -> None:
    run = refused(project, "lock.release", "--env", ENV)
    assert "pass --force" in run.stderr
    missing = refused(project, "lock.release", "--env", ENV, "--force")
    assert "no deploy lock at" in missing.stderr


def test_stack_build_refuses_a_release_name_the_journal_does_not_know(
    project: DeployProject,
) -> None:
    # Building the working tree under it would pass today's code off as that release.
    name = "release-local-20990101T000000Z-abc1234"
    run = refused(project, "stack.build", "--env", ENV, "--release", name)
    assert f"{name!r} is named like a release of local, but the journal has no record" in (
        run.stderr
    )
    assert "--release dev" in run.stderr


def test_a_running_release_whose_commit_is_not_here_stops_a_deploy_before_it_starts(
    tmp_path: Path,
) -> None:
    """A shallow clone lacks the commit of the release an undo would start again: said at
    once, with the commit to fetch, nothing changed (no lock, the journal as it was)."""
    proj = DeployProject(tmp_path / "app")
    proj.configure({ENV: process_env()})
    proj.init_env(ENV, {"PORT": str(free_port())})
    gone = "0123456789abcdef0123456789abcdef01234567"
    tag = "release-local-20260101T000000Z-0123456"
    record = {"kind": "release", "action": "deploy", "result": "ok", "tag": tag, "sha": gone}
    proj.state_dir(ENV).mkdir(parents=True)
    (proj.state_dir(ENV) / "journal.jsonl").write_text(json.dumps(record) + "\n")
    before = _state(proj)
    try:
        for command in (["deploy"], ["deploy", "--dry-run"], ["stack.up", "--release", tag]):
            run = proj.invoke(*command, "--env", ENV)
            assert run.returncode == 2, run.output
            assert "Traceback" not in run.output, run.output
            assert f"release {tag} was made from commit {gone[:12]}, which is not" in run.stderr
            assert f"fix: fetch it (git fetch --unshallow, or git fetch origin {gone})" in (
                run.stderr
            )
            assert _state(proj) == before
    finally:  # had it gone ahead, its processes would outlive the test
        proj.invoke("stack.down", "--env", ENV)
