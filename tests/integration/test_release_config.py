"""A release's own config, read from its commit in a real git repository (git is cheap)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from deploytools.commands.compose import Project
from deploytools.config import EnvironmentSettings, load_settings
from deploytools.errors import OperatorError
from deploytools.hosts.local import LocalHost
from deploytools.releaseconfig import ComposeFile, release_config
from deploytools.runtime.compose import ComposeRuntime
from tests.support.deployproject import toml_text


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, timeout=60
    ).stdout


def environment(**changes: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "env_file": "config/prod.env",
        "env_example": "config/prod.env.example",
        "runtime": "compose",
        "compose": {
            "project_name": "shop",
            "directory": "app",
            "files": ["compose.yml"],
            "image_name": "shop-old",
        },
        "services": {"backend": {"probe": {"url": "http://127.0.0.1:8000/health"}}},
        "celery": {"expected_workers": 1},
        "timeouts": {"health": 30},
    }
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


def commit(repo: Path, env: dict[str, Any], files: dict[str, str]) -> str:
    data = {"project": {"name": "shop"}, "environments": {"prod": env}}
    (repo / "config").mkdir(exist_ok=True)
    (repo / "config/deploy.toml").write_text(toml_text(data))
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a release")
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "config", "user.email", "t@example.invalid")
    git(tmp_path, "config", "user.name", "t")
    return tmp_path


def today(repo: Path) -> EnvironmentSettings:
    """Today's settings, with invoke config and a command-line flag over the file."""
    return load_settings(
        "prod",
        config_path=repo / "config/deploy.toml",
        overrides={"services": {"backend": {"probe": {"timeout": 5}}}, "timeouts": {"stop": 3}},
        cli={"rollout": {"max_parallel": 2}},
    )


def test_a_release_brings_its_services_celery_and_compose_files_nothing_else(
    repo: Path,
) -> None:
    old = commit(repo, environment(), {"app/compose.yml": "services: {backend: {}}\n"})
    commit(
        repo,
        environment(
            env_file="config/prod-2.env",
            state_dir="/var/lib/deploytools",
            compose={
                "project_name": "shop-2",
                "directory": "app",
                "files": ["compose.yml", "extra.yml"],
                "image_name": "shop-new",
            },
            services={"backend": {}, "search": {"probe": {"url": "http://127.0.0.1:9200/"}}},
            celery={"expected_workers": 3},
            timeouts={"health": 90},
        ),
        {"app/compose.yml": "services: {backend: {}, search: {}}\n", "app/extra.yml": "x\n"},
    )
    now = today(repo)
    records = [{"kind": "release", "tag": "r-old", "sha": old, "result": "ok"}]

    config = release_config(LocalHost(), now, "r-old", records)

    mine = config.settings
    assert (config.sha, config.describe()) == (
        old,
        f"using the compose files and config of r-old (commit {old[:12]})",
    )
    assert config.files == (
        ComposeFile("compose.yml", "app/compose.yml", b"services: {backend: {}}\n"),
    )
    assert list(mine.services) == ["backend"]  # no search: it came later
    assert mine.services["backend"].probe.url == "http://127.0.0.1:8000/health"
    assert mine.services["backend"].probe.timeout == 5  # invoke config, over the old file too
    assert mine.celery is not None and mine.celery.expected_workers == 1
    assert mine.compose is not None and now.compose is not None
    assert (mine.compose.files, mine.compose.image_name) == (["compose.yml"], "shop-old")
    # Today's: the env file, state, timeouts, overrides, the project and its directory.
    assert (mine.env_file, mine.state_dir) == ("config/prod-2.env", "/var/lib/deploytools")
    assert (mine.timeouts.health, mine.timeouts.stop, mine.rollout.max_parallel) == (90, 3, 2)
    assert (mine.compose.project_name, mine.compose.directory) == ("shop-2", "app")

    placed = config.place(LocalHost(), str(repo / "state/releases/r-old"))
    runtime = ComposeRuntime(placed, LocalHost())
    assert runtime.project == Project(
        name="shop-2",
        files=(str(repo / "state/releases/r-old/app/compose.yml"),),
        env_file="/var/lib/deploytools/prod/compose.env",  # today's env file, in today's state
        directory=str(repo / "app"),  # --project-directory: unchanged
    )
    assert runtime.source_env_file == str(repo / "config/prod-2.env")
    assert (repo / "state/releases/r-old/app/compose.yml").read_text() == (
        "services: {backend: {}}\n"
    )
    assert (repo / "app/compose.yml").read_text() == "services: {backend: {}, search: {}}\n"


def test_a_name_without_a_recorded_commit_runs_with_todays_config(repo: Path) -> None:
    commit(repo, environment(), {"app/compose.yml": "services: {}\n"})
    now = today(repo)
    records = [{"kind": "release", "tag": "other", "sha": "a" * 40}]
    config = release_config(LocalHost(), now, "dev", records)
    assert (config.sha, config.settings, config.files) == (None, now, ())
    assert config.describe() == "dev has no recorded commit: using today's config"


def test_a_commit_that_is_not_in_the_repository_is_a_clear_error(repo: Path) -> None:
    commit(repo, environment(), {"app/compose.yml": "services: {}\n"})
    gone = "0123456789abcdef0123456789abcdef01234567"
    records = [{"kind": "release", "tag": "r1", "sha": gone, "result": "ok"}]
    with pytest.raises(OperatorError) as refused:
        release_config(LocalHost(), today(repo), "r1", records)
    assert "release r1 was made from commit 0123456789ab, which is not in the repository" in (
        refused.value.problem
    )
    assert "shallow clone" in refused.value.problem
    assert f"git fetch origin {gone}" in refused.value.fix


def test_a_release_of_another_runtime_is_refused(repo: Path) -> None:
    old = commit(
        repo,
        environment(runtime="process", compose=None, services={"web": {"command": ["run"]}}),
        {},
    )
    commit(repo, environment(), {"app/compose.yml": "services: {}\n"})
    records = [{"kind": "release", "tag": "r1", "sha": old, "result": "ok"}]
    with pytest.raises(OperatorError, match="ran on the process runtime"):
        release_config(LocalHost(), today(repo), "r1", records)


def test_a_release_whose_file_a_later_version_would_refuse_still_gives_its_config(
    repo: Path,
) -> None:
    """A release made before hosts named a primary and while `parallelism` was a key: what it
    brings is read, what it does not bring (hosts, retired keys) is today's and not checked."""
    two_hosts = [{"name": "web-1", "address": "web-1.internal"}, {"name": "web-2", "address": "b"}]
    old = commit(
        repo,
        environment(parallelism=2, hosts=two_hosts),
        {"app/compose.yml": "services: {backend: {}}\n"},
    )
    commit(repo, environment(hosts=[{**two_hosts[0], "primary": True}, two_hosts[1]]), {})
    records = [{"kind": "release", "tag": "r-old", "sha": old, "result": "ok"}]
    now = today(repo)

    mine = release_config(LocalHost(), now, "r-old", records).settings

    assert mine.hosts == now.hosts and mine.primary_host.name == "web-1"
    assert mine.compose is not None and mine.compose.image_name == "shop-old"
