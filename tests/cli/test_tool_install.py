"""deploytools installed as a tool, in an environment of its own beside the app's.

The package is built as a wheel and installed into a fresh virtualenv (what ``pipx install`` or
``uv tool install`` do); its ``deploytools`` command then sets up a project that has no
``tasks.py`` yet. The wheel's own code answers (no PYTHONPATH to this checkout), so what the
package forgets to ship (the built-in env rules, the canary module, the command itself) fails
here. The tool's dependencies come from the test environment through a ``.pth`` line: the
package index is not needed and the test stays fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.support.cli import ROOT

pytestmark = pytest.mark.timeout(300)
COMMAND = 120.0


def run(argv: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # From a copy of what the package is made of: a build writes build/ beside its sources.
    source = out / "source"
    for name in ("pyproject.toml", "README.md", "deploytools_canary.py"):
        source.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "deploytools", source / "deploytools",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, source], cwd=out)
    [built] = out.glob("deploytools-*.whl")
    return built


def test_the_wheel_ships_the_command_rules_and_canary(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert "deploytools/rules/default.env.rules.toml" in names
    assert "deploytools_canary.py" in names and "deploytools/py.typed" in names
    assert "deploytools = deploytools.tasks.__main__:main" in scripts
    assert not any(n.startswith(("tests/", "example/", "bench/")) for n in names)


def test_the_tool_in_its_own_venv_sets_up_a_project(wheel: Path, tmp_path: Path) -> None:
    tool = tmp_path / "tool"
    venv.EnvBuilder(with_pip=False).create(tool)
    bin_dir = tool / ("Scripts" if os.name == "nt" else "bin")
    site = Path(
        run([bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            cwd=tmp_path).strip()
    )  # fmt: skip
    # The dependencies, not deploytools: the test environment's site-packages, after the tool's.
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, wheel],
        cwd=tmp_path)  # fmt: skip
    # pip --target leaves no console script: write the one an installer writes.
    command = bin_dir / "deploytools"
    command.write_text(
        f"#!{bin_dir / 'python'}\nimport sys\nfrom deploytools.tasks.__main__ import main\n"
        "sys.exit(main())\n"
    )
    command.chmod(0o755)
    project = tmp_path / "shop"
    project.mkdir()
    (project / "alembic.ini").write_text("[alembic]\nscript_location = alembic\n")
    (project / "alembic").mkdir()
    (project / ".env.example").write_text("DATABASE_URL=postgresql://shop:pw@db/shop\nAPI_TOKEN=x\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"NO_COLOR": "1", "COLUMNS": "200"}

    origin = run(
        [bin_dir / "python", "-c", "import deploytools; print(deploytools.__file__)"],
        cwd=project, env=env,
    )  # fmt: skip
    said = run([command, "init"], cwd=project, env=env)
    listed = run([command, "--list"], cwd=project, env=env)

    assert origin.startswith(str(site)), origin  # the wheel's code, not this checkout's
    assert "migrations: alembic (alembic.ini's script_location)" in said
    assert (project / "tasks.py").is_file() and (project / "config/deploy.toml").is_file()
    example = (project / "config/prod.env.example").read_text()
    assert "API_TOKEN=<change-me>" in example  # the built-in rules, shipped in the wheel
    assert "deploy" in listed and "rollback" in listed and "init" in listed
