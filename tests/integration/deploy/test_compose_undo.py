"""The undo of a compose deploy, on a real engine: a backend that dies after its first healthy
answer, and a release that added a service (the release before comes back as it was).
"""

from __future__ import annotations

import pytest

from deploytools.config import deep_merge
from tests.support.composedeploy import ENV, Stack, no_lock
from tests.support.deployproject import (
    EXAMPLE,
    assert_undone_after_dying,
    compose_env,
    deploy_toml,
    dies_after_healthy,
    health,
)
from tests.support.processdeploy import WEB

pytestmark = pytest.mark.integration


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
    no_lock(stack)


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
    no_lock(stack)
