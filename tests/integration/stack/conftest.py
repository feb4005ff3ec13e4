"""Fixtures for the stack and celery tests: one example image per session, test settings.

The image is built once (by ``ComposeRuntime.build``, as a deploy builds it) under a name unique
to the session and untagged at the end; Docker's layer cache makes later sessions fast.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploytools.config import EnvironmentSettings, deep_merge
from deploytools.hosts.local import LocalHost
from deploytools.runtime.compose import ComposeRuntime
from deploytools.ui import Ui
from tests.support import parts
from tests.support.procs import free_port
from tests.support.require import require
from tests.support.stackenv import EXAMPLE_DIR, make_settings

RELEASE = "r1"
COMPOSE_FILES = [
    str(EXAMPLE_DIR / "docker-compose.prod.yml"),
    str(EXAMPLE_DIR / "docker-compose.test.yml"),
]


@dataclass
class CapturedUi:
    ui: Ui
    err: io.StringIO

    @property
    def text(self) -> str:
        return self.err.getvalue()


@pytest.fixture
def captured() -> CapturedUi:
    err = io.StringIO()
    return CapturedUi(Ui(stderr=err, stdout=io.StringIO()), err)


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    return path


def compose_settings(
    root: Path,
    env_file: Path,
    project: str,
    image: str,
    extra_files: tuple[str, ...] = (),
    services: dict[str, Any] | None = None,
) -> EnvironmentSettings:
    """The example stack under compose (prod file + test override) with tight test timeouts;
    ``services`` adds to (or overrides) the services' settings."""
    return make_settings(
        root,
        runtime="compose",
        env_file=str(env_file),
        compose={
            "project_name": project,
            "directory": str(EXAMPLE_DIR),
            "files": [*COMPOSE_FILES, *extra_files],
            "image_name": image,
        },
        services=deep_merge(
            {
                "backend": {
                    "probe": {
                        "url": "http://127.0.0.1:{PORT}/health",
                        "json_fields": {"status": "healthy"},
                        "timeout": 120,
                    }
                },
                "celery-worker": {"probe": {"timeout": 120}},
            },
            services or {},
        ),
        celery={"expected_workers": 1, "ping_timeout": 2, "canary_timeout": 15},
        timeouts={"stop": 5, "command": 900},
    )


@dataclass
class Image:
    name: str
    release: str
    ids: dict[str, str]


@pytest.fixture(scope="session")
def example_image(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """The example app's image, release ``r1``, built once per session from the wheelhouse."""
    wheelhouse = EXAMPLE_DIR / "wheelhouse"
    require(wheelhouse.is_dir(), f"example wheelhouse {wheelhouse}", parts.PROVISION)
    root = tmp_path_factory.mktemp("example-image")
    env_file = write_env(root / "build.env", {"PORT": str(free_port())})
    name = f"deploytools-stack-{uuid.uuid4().hex[:8]}"
    runtime = ComposeRuntime(compose_settings(root, env_file, f"{name}-build", name), LocalHost())
    try:
        yield Image(name, RELEASE, runtime.build(RELEASE))
    finally:
        runtime.remove_release(RELEASE)
