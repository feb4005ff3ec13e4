"""A release's own virtualenv (``releases.venv``) through the Host seam: the exact argv with uv
and without it, reuse, what a failed install leaves (nothing), retention, and the config keys
that are refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from deploytools.errors import DeployFailure, OperatorError
from deploytools.runtime.venv import DONE, LINK, USES, ReleaseVenvs
from deploytools.testing import MemoryHost
from tests.support.stackenv import make_settings

ROOT = "/srv/app"
VENVS = f"{ROOT}/.deploytools/t/venvs"
CODE = f"{ROOT}/.deploytools/t/releases/r1"
IDENTITY = "/usr/bin/python3.11\n3.11.2 (main) [GCC 12.2.0]\n"  # what python3 says it is
REQUIREMENTS = b"shopdep==1\n"
NAME = hashlib.sha256(IDENTITY.encode() + b"\0" + REQUIREMENTS).hexdigest()


def venvs(tmp_path: Path, host: MemoryHost, **environment: Any) -> ReleaseVenvs:
    settings = make_settings(
        tmp_path,
        app_dir="app",
        state_dir=".deploytools",
        hosts=[{"name": "web-1", "address": "10.0.0.1", "root": ROOT}],
        releases={"venv": "requirements.txt"},
        **environment,
    )
    return ReleaseVenvs(settings, host, f"{ROOT}/app")


def host_with(uv: bool, failing: str | None = None) -> MemoryHost:
    """A host whose python3 answers its identity; ``failing``: a program that exits 1."""

    def answer(argv: list[str]) -> tuple[int, str]:
        if argv[:2] == ["python3", "-c"]:
            return 0, IDENTITY
        if argv[1:2] == ["-c"]:  # another interpreter
            return 0, f"{argv[0]}\n3.12.1\n"
        if argv[0] == "uv" and not uv:
            return 127, "uv: command not found"
        if failing is not None and failing in argv:
            return 1, "Collecting shopdep==1\nERROR: No matching distribution found for shopdep==1"
        return 0, ""

    return MemoryHost("web-1", answer)


def test_uv_makes_the_virtualenv_in_the_release_and_links_it(tmp_path: Path) -> None:
    host = host_with(uv=True)

    made = venvs(tmp_path, host).provide("r1", CODE, REQUIREMENTS)

    path = f"{VENVS}/{NAME}"
    assert made == {"venv": path, "installer": "uv"}
    assert host.commands == [
        ["python3", "-c", host.commands[0][2]],
        ["uv", "--version"],
        ["uv", "venv", "--quiet", "--no-python-downloads", "--python", "python3", path],
        ["uv", "pip", "install", "--quiet", "--no-progress", "--python", path, "-r",
         "requirements.txt"],
    ]  # fmt: skip
    assert host.links[f"{CODE}/{LINK}"] == path
    assert host.files[f"{CODE}/{USES}"] == NAME.encode()
    assert json.loads(host.files[f"{path}/{DONE}"])["installer"] == "uv"


def test_without_uv_the_interpreters_venv_and_pip_make_it(tmp_path: Path) -> None:
    host = host_with(uv=False)

    made = venvs(tmp_path, host).provide("r1", CODE, REQUIREMENTS)

    path = f"{VENVS}/{NAME}"
    assert made["installer"] == "pip"
    assert host.commands[2:] == [
        ["python3", "-m", "venv", path],
        [f"{path}/bin/python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-input", "-r", "requirements.txt"],
    ]  # fmt: skip


def test_a_finished_virtualenv_is_reused_and_one_cut_short_is_made_again(tmp_path: Path) -> None:
    host = host_with(uv=True)
    path = f"{VENVS}/{NAME}"
    host.files[f"{path}/{DONE}"] = b"{}"

    assert venvs(tmp_path, host).provide("r1", CODE, REQUIREMENTS) == {"venv": path}
    assert [c[0] for c in host.commands] == ["python3"]  # nothing installed

    del host.files[f"{path}/{DONE}"]
    host.files[f"{path}/lib/half-installed.py"] = b""
    host.commands.clear()
    venvs(tmp_path, host).provide("r2", CODE, REQUIREMENTS)
    assert f"{path}/lib/half-installed.py" not in host.files  # removed before the new build
    assert ["uv", "pip"] in [c[:2] for c in host.commands]


def test_another_interpreter_or_other_requirements_make_another_virtualenv(
    tmp_path: Path,
) -> None:
    host = host_with(uv=True)
    made = venvs(tmp_path, host).provide("r1", CODE, REQUIREMENTS)["venv"]
    other = venvs(tmp_path, host).provide("r2", CODE, b"shopdep==2\n")["venv"]
    configured = venvs(tmp_path, host, python="/opt/py/bin/python3.12")
    on_it = configured.provide("r3", CODE, REQUIREMENTS)["venv"]

    assert len({made, other, on_it}) == 3
    assert ["uv", "venv", "--quiet", "--no-python-downloads", "--python",
            "/opt/py/bin/python3.12", on_it] in host.commands  # fmt: skip


def test_a_relative_interpreter_is_app_dirs_when_there_else_the_hosts_python3(
    tmp_path: Path,
) -> None:
    host = host_with(uv=True)
    relative = venvs(tmp_path, host, python=".venv/bin/python")
    assert relative.base_python() == "python3"  # the release's .venv is what is being made
    host.files[f"{ROOT}/app/.venv/bin/python"] = b""
    assert relative.base_python() == f"{ROOT}/app/.venv/bin/python"


def test_a_failed_install_leaves_no_virtualenv_and_says_the_installers_last_lines(
    tmp_path: Path,
) -> None:
    host = host_with(uv=False, failing="pip")

    with pytest.raises(DeployFailure) as caught:
        venvs(tmp_path, host).provide("r1", CODE, REQUIREMENTS)

    assert "cannot make the virtualenv of release r1 from requirements.txt with pip" in str(
        caught.value
    )
    assert "No matching distribution found for shopdep==1" in caught.value.problem
    assert "environments.t.releases.venv" in caught.value.fix
    assert not [p for p in (*host.files, *host.dirs) if p.startswith(f"{VENVS}/")]
    assert f"{CODE}/{LINK}" not in host.links


def test_a_release_without_the_file_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    host = host_with(uv=True)

    with pytest.raises(OperatorError) as caught:
        venvs(tmp_path, host).requirements_of(None, "r1")

    assert "release r1 has no file requirements.txt" in caught.value.problem
    assert "environments.t.releases.venv" in caught.value.problem
    assert host.commands == [] and host.files == {}


def test_retention_keeps_the_virtualenvs_the_releases_left_use(tmp_path: Path) -> None:
    host = host_with(uv=True)
    for name in ("used", "unused", "half"):
        host.dirs.add(f"{VENVS}/{name}")
    host.files[f"{ROOT}/releases/a/{USES}"] = b"used\n"
    host.dirs.add(f"{ROOT}/releases/b")  # no virtualenv of its own

    removed = venvs(tmp_path, host).sweep([f"{ROOT}/releases/a", f"{ROOT}/releases/b"])

    assert sorted(removed) == [f"{VENVS}/half", f"{VENVS}/unused"]
    assert host.listdir(VENVS) == ["used"]


@pytest.mark.parametrize(
    "value", ["../requirements.txt", "/etc/requirements.txt", "deps/../../x.txt", "C:\\r.txt", "."]
)
def test_a_requirements_path_outside_the_release_is_a_config_error(
    tmp_path: Path, value: str
) -> None:
    from deploytools.config import EnvironmentSettings, validate_model

    raw = {"name": "t", "env_file": "t.env", "env_example": "t.env.example",
           "runtime": "process", "releases": {"venv": value}}  # fmt: skip
    with pytest.raises(OperatorError) as caught:
        validate_model(EnvironmentSettings, raw, "config/deploy.toml", prefix="environments.t")

    assert "environments.t.releases.venv" in caught.value.problem
    assert "is not a file of the release" in caught.value.problem
