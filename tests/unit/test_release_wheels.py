"""A release virtualenv's packages shipped as wheels (``releases.wheels``), through the Host
seam: the control machine's ``pip wheel`` made once per run, a host with another interpreter
refused before anything is written there, the exact install argv with no index, and the
settings that are refused. A real host without an index is in
tests/integration/deploy/test_deploy_release_wheels.py."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from deploytools.codetree import Archives
from deploytools.errors import OperatorError
from deploytools.runtime.venv import DONE, ReleaseVenvs
from deploytools.runtime.wheels import Wheelhouse, check_platform
from deploytools.testing import MemoryHost
from tests.support.stackenv import make_settings
from tests.unit.test_release_venv import IDENTITY, NAME, REQUIREMENTS, ROOT, VENVS
from tests.unit.test_ship import Receiver

CODE = f"{ROOT}/.deploytools/t/releases/r1.partial"
HERE = {"python": "cpython 3.11", "platform": "linux-x86_64", "libc": "glibc 2.36"}


def settings(tmp_path: Path, **releases: Any) -> Any:
    return make_settings(
        tmp_path,
        app_dir="app",
        state_dir=".deploytools",
        hosts=[{"name": "web-1", "address": "10.0.0.1", "root": ROOT}],
        releases={"venv": "requirements.txt", "wheels": True, **releases},
    )


def code_archive(tmp_path: Path) -> Path:
    path = tmp_path / "code.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("requirements.txt")
        info.size = len(REQUIREMENTS)
        tar.addfile(info, io.BytesIO(REQUIREMENTS))
    return path


def control(pip_exit: int = 0) -> MemoryHost:
    """The control machine: ``pip wheel`` exits ``pip_exit`` (1: pip's own last words)."""

    def answer(argv: list[str]) -> tuple[int, str]:
        if argv[1:4] == ["-m", "pip", "wheel"]:
            said = "Collecting shopdep==1\nERROR: No matching distribution found for shopdep==1"
            return pip_exit, said if pip_exit else ""
        return 0, json.dumps(HERE)

    return MemoryHost("control", answer, local=True)


class Host(Receiver):
    """A remote host whose ``python3`` says its identity and its platform (``platform``)."""

    def __init__(self, platform: dict[str, str] = HERE) -> None:
        super().__init__()
        self.name = "web-1"
        self.platform = platform

    def _answer(self, argv: list[str]) -> tuple[int, str]:
        if argv[:2] == ["python3", "-c"]:
            return 0, json.dumps(self.platform) if "json" in argv[2] else IDENTITY
        if argv[0] == "uv":
            return 127, "uv: command not found"
        return super()._answer(argv)


def wheels(tmp_path: Path, host: Host, archives: Archives, boss: MemoryHost) -> Wheelhouse | None:
    venvs = ReleaseVenvs(settings(tmp_path), host, f"{ROOT}/app")
    return venvs.wheels_for(archives, boss, code_archive(tmp_path), REQUIREMENTS)


def test_the_control_machine_makes_the_wheels_once_for_every_host(tmp_path: Path) -> None:
    boss = control()
    with contextlib.closing(Archives()) as archives:
        first = wheels(tmp_path, Host(), archives, boss)
        second = wheels(tmp_path, Host(), archives, boss)

    assert first is second is not None
    made = [argv for argv in boss.commands if argv[1:4] == ["-m", "pip", "wheel"]]
    assert len(made) == 1
    assert made[0][-4:-2] == ["-r", "requirements.txt"] and made[0][-2] == "-w"
    assert first is not None and first.made_on == HERE


def test_a_host_with_another_interpreter_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    host = Host({**HERE, "python": "cpython 3.12"})

    with contextlib.closing(Archives()) as archives, pytest.raises(OperatorError) as caught:
        wheels(tmp_path, host, archives, control())

    assert "python3 on web-1 cannot install the release's wheels" in caught.value.problem
    assert "python cpython 3.12 (the wheels': cpython 3.11)" in caught.value.problem
    assert "nothing was written on web-1" in caught.value.problem
    assert "environments.t.releases.wheels = false" in caught.value.fix
    assert host.files == {} and host.fed == [] and host.dirs == set()


@pytest.mark.parametrize(
    ("there", "refused"),
    [
        ({**HERE, "libc": "glibc 2.31"}, "libc glibc 2.31 (the wheels': glibc 2.36)"),
        ({**HERE, "libc": "musl 1.2"}, "libc musl 1.2"),
        ({**HERE, "platform": "linux-aarch64"}, "platform linux-aarch64"),
        ({**HERE, "libc": "glibc 2.41"}, None),  # a newer glibc runs the older's wheels
    ],
)
def test_the_platform_and_c_library_must_fit_the_wheels(
    tmp_path: Path, there: dict[str, str], refused: str | None
) -> None:
    house = Wheelhouse(tmp_path / "w.tar", ("a-1-py3-none-any.whl",), HERE)
    if refused is None:
        check_platform(house, json.dumps(there), "web-1", "python3", "k")
        return
    with pytest.raises(OperatorError, match=refused.replace("(", r"\(").replace(")", r"\)")):
        check_platform(house, json.dumps(there), "web-1", "python3", "k")


def test_a_requirement_without_a_wheel_is_said_once_and_again_for_every_host(
    tmp_path: Path,
) -> None:
    boss, host, other = control(pip_exit=1), Host(), Host()

    with contextlib.closing(Archives()) as archives:
        for target in (host, other):
            with pytest.raises(OperatorError) as caught:
                wheels(tmp_path, target, archives, boss)
            problem = caught.value.problem
            assert problem.endswith("ERROR: No matching distribution found for shopdep==1")
            assert "no host was touched" in caught.value.fix

    assert len([a for a in boss.commands if a[1:4] == ["-m", "pip", "wheel"]]) == 1
    assert host.files == other.files == {} and host.fed == other.fed == []


def test_a_host_that_has_the_virtualenv_gets_no_wheels(tmp_path: Path) -> None:
    boss, host = control(), Host()
    host.files[f"{VENVS}/{NAME}/{DONE}"] = b"{}"

    with contextlib.closing(Archives()) as archives:
        assert wheels(tmp_path, host, archives, boss) is None

    assert boss.commands == []


def test_the_host_installs_from_the_shipped_wheels_alone_then_removes_them(
    tmp_path: Path,
) -> None:
    house = Wheelhouse(code_archive(tmp_path), ("shopdep-1-py3-none-any.whl",), HERE)
    host = Host()
    venvs = ReleaseVenvs(settings(tmp_path), host, f"{ROOT}/app")

    made = venvs.provide("r1", CODE, REQUIREMENTS, house)

    path = f"{VENVS}/{NAME}"
    assert made == {"venv": path, "installer": "pip", "wheels": "1 wheels shipped"}
    upload = host.fed[0][0][1].removeprefix("of=")
    staging = upload.removesuffix(".tar")
    assert staging.startswith(f"{VENVS}/.{NAME}.") and staging.endswith(".wheels")
    assert host.fed[0][1] == house.archive.read_bytes()
    assert ["tar", "-x", "-p", "--no-same-owner", "-f", upload, "-C", staging] in host.commands
    assert [f"{path}/bin/python", "-m", "pip", "install", "--quiet",
            "--disable-pip-version-check", "--no-input", "--no-index", "--find-links", staging,
            "-r", "requirements.txt"] in host.commands  # fmt: skip
    assert not any(p.startswith(staging) for p in [*host.files, *host.dirs])


def test_the_plan_says_the_wheels_come_from_the_control_machine(tmp_path: Path) -> None:
    plan = ReleaseVenvs(settings(tmp_path), Host(), f"{ROOT}/app").plan()
    assert "from wheels made once on the control machine (pip wheel -r requirements.txt)" in (
        plan[0]
    )
    local = MemoryHost("here", local=True)
    assert "control machine" not in ReleaseVenvs(settings(tmp_path), local, f"{ROOT}/app").plan()[0]


@pytest.mark.parametrize(
    ("releases", "said"),
    [
        ({"venv": "requirements.txt", "wheels": "yes"}, "valid boolean"),
        ({"wheels": True}, "releases.venv is not set"),
    ],
)
def test_bad_wheels_settings_are_config_errors(releases: dict[str, Any], said: str) -> None:
    from deploytools.config import EnvironmentSettings, validate_model

    raw = {"name": "t", "env_file": "t.env", "env_example": "t.env.example",
           "runtime": "process", "releases": releases}  # fmt: skip
    with pytest.raises(OperatorError) as caught:
        validate_model(EnvironmentSettings, raw, "config/deploy.toml", prefix="environments.t")

    assert "environments.t.releases" in caught.value.problem
    assert said in caught.value.problem


def test_the_wheels_are_made_by_the_apps_interpreter_when_the_control_machine_has_it(
    tmp_path: Path,
) -> None:
    import shutil
    import sys

    from deploytools.runtime.wheels import builder

    app = tmp_path / "app"
    (app / ".venv/bin").mkdir(parents=True)
    (app / ".venv/bin/python").write_text("")

    def configured(python: str | None) -> str:
        return builder(make_settings(tmp_path, app_dir="app", python=python))

    assert configured(None) == sys.executable
    assert configured(".venv/bin/python") == str(app / ".venv/bin/python")
    assert configured("/opt/nowhere/python") == sys.executable  # the host's, not ours
    assert configured("sh") == shutil.which("sh")
