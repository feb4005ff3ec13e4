"""Where alembic runs: the argv each runtime builds, through the Host seam, and what it refuses.

The app's alembic runs where the app does (the app's interpreter in the release directory, or
a one-off container of the release's image), with the env file's values in its environment and
never on its command line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from deploytools.commands import alembic
from deploytools.errors import OperatorError
from deploytools.hosts.base import Result
from deploytools.runtime.compose import ComposeRuntime
from deploytools.runtime.process import ProcessRuntime, Survey
from deploytools.testing import MemoryHost
from tests.support.stackenv import make_settings
from tests.unit.test_compose_runtime import STATE, FakeDocker
from tests.unit.test_compose_runtime import runtime as compose_runtime

SECRET_URL = "postgresql://app:Pw-s3cret-42@127.0.0.1:5432/app"
VALUES = {"DATABASE_URL": SECRET_URL, "PORT": "8000"}
TIMEOUTS = {"PGOPTIONS": "-c lock_timeout=5000 -c statement_timeout=600000"}
RELEASES = "/srv/app/.deploytools/t/releases"


class RecordingLauncher:
    """Records what ``run`` was given; starts nothing."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

    def run(self, argv: list[str], cwd: str, env: dict[str, str], timeout: float) -> Result:
        self.runs.append({"argv": argv, "cwd": cwd, "env": env, "timeout": timeout})
        return Result(argv, 0, "", "", 0.0)

    def spawn(self, *args: Any) -> int:
        raise AssertionError("a migration starts no service")

    def state(self, pid: int) -> tuple[bool, int | None]:
        return False, None

    def signal(self, pid: int, *, kill: bool) -> None:
        raise AssertionError("a migration stops nothing")

    def survey(self, programs: Sequence[str]) -> Survey:
        raise AssertionError("not asked")


def process(
    tmp_path: Path, host: MemoryHost, **environment: Any
) -> tuple[ProcessRuntime, RecordingLauncher]:
    settings = make_settings(
        tmp_path,
        app_dir="app",
        state_dir=".deploytools",
        hosts=[{"name": "web-1", "address": "10.0.0.1", "root": "/srv/app"}],
        **environment,
    )
    launcher = RecordingLauncher()
    return ProcessRuntime(settings, host, VALUES, launcher=launcher), launcher


def released(host: MemoryHost, release: str = "r1") -> None:
    host.files[f"{RELEASES}/{release}/.deploytools-release"] = release.encode()
    host.files[f"{RELEASES}/{release}/alembic.ini"] = b"[alembic]\nscript_location = alembic\n"


def test_process_runs_the_apps_alembic_on_its_venv_in_the_release(tmp_path: Path) -> None:
    host = MemoryHost("web-1")
    released(host)
    host.files["/srv/app/app/.venv/bin/python"] = b""
    rt, launcher = process(tmp_path, host)

    rt.run_alembic("r1", alembic.upgrade("alembic.ini", "head"), TIMEOUTS)

    [run] = launcher.runs
    assert run["argv"] == [
        "/srv/app/app/.venv/bin/python", "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"
    ]  # fmt: skip
    assert run["cwd"] == f"{RELEASES}/r1"
    assert run["env"]["DATABASE_URL"] == SECRET_URL  # the env file's values, in its environment
    assert run["env"]["RELEASE_ID"] == "r1"
    assert run["env"]["PGOPTIONS"] == TIMEOUTS["PGOPTIONS"]
    assert not any("Pw-s3cret-42" in part for part in run["argv"])


def test_the_release_own_venv_runs_its_services_and_migrations_not_app_dirs(
    tmp_path: Path,
) -> None:
    """A release that carries its packages (``<release>/.venv``) runs on them: a rollback runs
    old code on old packages. deploytools' own helpers stay on the host's plain python."""
    host = MemoryHost("web-1")
    released(host)
    host.files["/srv/app/app/.venv/bin/python"] = b""
    host.files[f"{RELEASES}/r1/.venv/bin/python"] = b""
    rt, launcher = process(
        tmp_path, host, services={"web": {"command": ["{python}", "-m", "shop", "{PORT}"]}}
    )

    rt.run_alembic("r1", alembic.upgrade("alembic.ini", "head"), {})

    assert launcher.runs[0]["argv"][0] == f"{RELEASES}/r1/.venv/bin/python"
    assert rt.argv("web", "r1") == [f"{RELEASES}/r1/.venv/bin/python", "-m", "shop", "8000"]
    assert rt.argv("web") == ["/srv/app/app/.venv/bin/python", "-m", "shop", "8000"]
    assert rt.python == "python3"


def test_a_relative_interpreter_is_looked_up_in_the_release_then_app_dir(tmp_path: Path) -> None:
    host = MemoryHost("web-1")
    released(host)
    released(host, "r2")
    host.files["/srv/app/app/env/bin/python"] = b""
    host.files[f"{RELEASES}/r2/env/bin/python"] = b""
    rt, _ = process(tmp_path, host, python="env/bin/python")

    assert rt.app_python("r1") == "/srv/app/app/env/bin/python"
    assert rt.app_python("r2") == f"{RELEASES}/r2/env/bin/python"


def test_process_without_a_venv_or_setting_uses_the_services_interpreter(tmp_path: Path) -> None:
    host = MemoryHost("web-1")
    released(host)
    rt, launcher = process(tmp_path, host)

    rt.run_alembic("r1", alembic.downgrade("alembic.ini", "base"), {})

    assert launcher.runs[0]["argv"][:3] == ["python3", "-m", "alembic"]
    assert launcher.runs[0]["argv"][3:] == ["-c", "alembic.ini", "downgrade", "base"]


def test_process_with_a_configured_interpreter_and_no_release_runs_in_app_dir(
    tmp_path: Path,
) -> None:
    host = MemoryHost("web-1")
    host.files["/srv/app/app/alembic.ini"] = b"[alembic]\n"
    host.files["/opt/shop/bin/python"] = b""
    rt, launcher = process(tmp_path, host, python="/opt/shop/bin/python")

    rt.run_alembic(None, alembic.upgrade("alembic.ini", "a1:b2", sql=True), {})

    [run] = launcher.runs
    assert run["argv"] == [
        "/opt/shop/bin/python", "-m", "alembic", "-c", "alembic.ini", "upgrade", "a1:b2", "--sql"
    ]  # fmt: skip
    assert run["cwd"] == "/srv/app/app" and "RELEASE_ID" not in run["env"]


@pytest.mark.parametrize("python", ["venv/bin/python", "/usr/bin/python3.99"])
def test_a_configured_interpreter_that_does_not_exist_is_refused(
    tmp_path: Path, python: str
) -> None:
    host = MemoryHost("web-1")
    released(host)
    rt, launcher = process(tmp_path, host, python=python)

    with pytest.raises(OperatorError) as caught:
        rt.run_alembic("r1", alembic.upgrade("alembic.ini", "head"), {})

    assert caught.value.problem.startswith("python ") and "does not exist on web-1" in (
        caught.value.problem
    )
    assert "environments.t.python" in caught.value.fix
    assert launcher.runs == []


def test_a_release_without_the_alembic_ini_is_refused_before_running(tmp_path: Path) -> None:
    host = MemoryHost("web-1")
    host.files[f"{RELEASES}/r1/.deploytools-release"] = b"r1"
    rt, launcher = process(tmp_path, host)

    with pytest.raises(OperatorError) as caught:
        rt.run_alembic("r1", alembic.upgrade("alembic.ini", "head"), {})

    assert caught.value.problem == f"no alembic.ini in {RELEASES}/r1 on web-1: alembic runs there"
    assert launcher.runs == []


class SecretDocker(FakeDocker):
    """FakeDocker that also records what each command got through ``secret_env``."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[dict[str, str]] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> Result:
        self.secrets.append(dict(secret_env or {}))
        return super().run(argv, env=env, **kw)


def test_compose_runs_alembic_in_a_one_off_container_of_the_release(tmp_path: Path) -> None:
    host = SecretDocker()
    rt: ComposeRuntime = compose_runtime(tmp_path, host)

    rt.run_alembic("r2", alembic.upgrade("alembic.ini", "head"), TIMEOUTS)

    argv = host.commands[-1]
    assert argv == [
        "docker", "compose", "-p", "p", "-f", "/srv/app/example/a.yml", "-f", "/abs/b.yml",
        "-f", rt.labels_file,
        "--env-file", f"{STATE}/compose.env", "--project-directory", "/srv/app/example",
        "run", "--rm", "--no-deps", "-T", "-e", "PGOPTIONS",
        "backend", "alembic", "-c", "alembic.ini", "upgrade", "head",
    ]  # fmt: skip
    assert host.envs[-1]["RELEASE_ID"] == "r2"  # the image of the release being deployed
    assert host.secrets[-1] == TIMEOUTS  # values through the environment, not the argv


def test_compose_migration_service_is_configurable(tmp_path: Path) -> None:
    host = SecretDocker()
    rt = compose_runtime(tmp_path, host)
    settings = rt.settings.model_copy(
        update={
            "database": rt.settings.database.model_copy(update={"migrate_service": "celery-worker"})
        }
    )
    rt = ComposeRuntime(settings, host)

    rt.run_alembic("r2", alembic.downgrade("alembic.ini", "a1"), {})

    assert host.commands[-1][-6:] == [
        "celery-worker",
        "alembic",
        "-c",
        "alembic.ini",
        "downgrade",
        "a1",
    ]


def test_a_migration_service_missing_from_the_compose_files_is_refused(tmp_path: Path) -> None:
    host = SecretDocker()
    rt = compose_runtime(tmp_path, host)
    settings = rt.settings.model_copy(
        update={"database": rt.settings.database.model_copy(update={"migrate_service": "api"})}
    )
    rt = ComposeRuntime(settings, host)

    with pytest.raises(OperatorError) as caught:
        rt.run_alembic("r2", alembic.upgrade("alembic.ini", "head"), {})

    assert caught.value.problem == (
        "database.migrate_service 'api' is not a service of compose project p "
        "(services: backend, celery-worker)"
    )
    assert "environments.t.database.migrate_service" in caught.value.fix
    assert not any("run" in argv for argv in host.commands)
