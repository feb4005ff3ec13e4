"""The migration round trip of compose environments, in the image their deploy builds: the
example with only its compose environments selected (staging and prod build the same image:
one round trip for both), a real Docker engine and the gate's throwaway PostgreSQL (SQLite
when no server is installed); without an engine, the project's interpreter runs it instead,
which the gate says (a warning, never a pass)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_verify import KIND, coupons, messages, statuses
from tests.support.cli import TempProject
from tests.support.deployproject import unique
from tests.support.gateproject import image_gate_project, run_gate

COMPOSE_ONLY = ("--env", "staging", "--env", "prod")
BUILD_TIMEOUT = 600.0  # a first build installs the wheelhouse into the image
NO_ENGINE = "unix:///nonexistent/deploytools-verify-no-engine.sock"


@pytest.fixture(scope="module")
def image_name() -> str:
    return unique("gate-image")


@pytest.fixture
def project(tmp_path: Path, image_name: str, docker_engine: Any) -> TempProject:
    return image_gate_project(tmp_path / "project", image_name)


def gate(project: TempProject, *args: str, env: dict[str, str] | None = None) -> Any:
    return run_gate(project, "--json", "--only", "migration-roundtrip", *COMPOSE_ONLY, *args,
                    env=env, timeout=BUILD_TIMEOUT)  # fmt: skip


def tags(image_name: str) -> list[str]:
    done = subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", image_name],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.split()


def test_the_roundtrip_runs_in_the_image_the_deploy_builds(
    project: TempProject, image_name: str
) -> None:
    # Only a container has /.dockerenv: this revision fails on any interpreter of the host.
    in_container = "import os\n    assert os.path.exists('/.dockerenv'), 'not in a container'\n    "
    coupons(project, "op.drop_table('coupons')", before=in_container)

    run = gate(project)

    assert run.returncode == 0, run.output
    assert statuses(run, "migration-roundtrip") == {"revisions": "pass"}
    [said] = messages(run, "migration-roundtrip", "pass")
    assert re.fullmatch(
        f"upgrade head, downgrade base, upgrade head on a throwaway {KIND} database \\(in "
        f"image {image_name}:sql-staging-nocommit-[0-9a-f]{{6}}, built from the compose files "
        "of staging, prod\\); alembic check not run: env.py gives no target_metadata \\(no "
        "models declared\\)",
        said,
    ), said
    assert tags(image_name) == []  # the gate's tag is gone; its layers stay in the build cache


def test_a_downgrade_that_does_not_undo_its_upgrade_fails_in_the_image(
    project: TempProject, image_name: str
) -> None:
    coupons(project, "op.drop_table('coupon')")

    run = gate(project)

    assert run.returncode == 1, run.output
    [failed] = messages(run, "migration-roundtrip")
    assert failed.startswith(
        f"downgrade base on a throwaway {KIND} database (in image {image_name}:sql-staging-"
    ), failed
    assert ", built from the compose files of staging, prod) failed: downgrade failed in " \
        "revision 0004: " in failed, failed  # fmt: skip
    assert tags(image_name) == []


def test_an_image_that_does_not_build_fails_with_the_builds_words(project: TempProject) -> None:
    dockerfile = project.file("example/Dockerfile")
    text = dockerfile.read_text()
    dockerfile.write_text(text.replace("WORKDIR /app", "RUN exit 3\nWORKDIR /app"))

    run = gate(project)

    assert run.returncode == 1, run.output
    [failed] = messages(run, "migration-roundtrip")
    assert failed.startswith(
        "staging, prod: the images to run the migrations' alembic in did not build (docker "
        "compose build, as a deploy builds them): `docker compose -p deploytools-verify-"
    ), failed
    # BuildKit's last words, not its whole log
    assert "failed to solve" in failed and failed.endswith("exit code: 3"), failed
    assert "#5" not in failed and "level=warning" not in failed


def test_without_an_engine_the_projects_interpreter_runs_it_and_says_so(
    project: TempProject,
) -> None:
    lenient = gate(project, env={"DOCKER_HOST": NO_ENGINE})
    strict = gate(project, "--strict", env={"DOCKER_HOST": NO_ENGINE})

    assert lenient.returncode == 0, lenient.output
    assert statuses(lenient, "migration-roundtrip") == {"revisions": "warn"}
    [said] = messages(lenient, "migration-roundtrip", "warn")
    assert said.startswith(
        "could not run in the image of staging, prod: the Docker engine on local is "
        "unreachable: `docker version` failed with 'Cannot connect to the Docker daemon at "
        f"{NO_ENGINE}."
    ), said
    assert re.search(
        f"; ran on (\\S+) instead: upgrade head, downgrade base, upgrade head on a throwaway "
        f"{KIND} database \\(\\1\\); alembic check not run",
        said,
    ), said
    assert strict.returncode == 1, strict.output


def test_a_sqlite_throwaway_is_mounted_into_the_container(
    project: TempProject, image_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no PostgreSQL server is installed: the container writes the SQLite file the gate
    reads the revision from, at the same path (run in this process, the server hidden)."""
    from deploytools.gate import throwaway
    from deploytools.gate.checks.migrations import check_roundtrip
    from deploytools.gate.project import open_project
    from deploytools.redact import Redactor

    monkeypatch.setattr(throwaway, "server_bindir", lambda: None)
    opened = open_project(project.file("config/deploy.toml"), ["prod"], Redactor())

    [item] = check_roundtrip(opened, None)

    assert item.status == "pass", item.message
    assert item.message.startswith(
        f"upgrade head, downgrade base, upgrade head on a throwaway SQLite database (in image "
        f"{image_name}:sql-prod-nocommit-"
    ), item.message
    assert tags(image_name) == []
