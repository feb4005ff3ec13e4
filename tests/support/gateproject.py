"""The example project whole, as the verify gate reads it: ``TempProject``'s config and
migrations plus the example's compose files, nginx config and app code (whose sources name
the flags), the README and Squawk's configuration; never the wheelhouse (the gate reads no
image input)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.cli import ROOT, Run, TempProject

GATE_TIMEOUT = 60.0


def gate_project(path: Path) -> TempProject:
    path.mkdir(parents=True)
    project = TempProject(path)
    for name in ("docker-compose.prod.yml", "docker-compose.test.yml", "README.md"):
        shutil.copy2(ROOT / "example" / name, path / "example" / name)
    for tree in ("exampleapp", "nginx"):
        shutil.copytree(
            ROOT / "example" / tree,
            path / "example" / tree,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    for name in ("README.md", ".squawk.toml"):
        shutil.copy2(ROOT / name, path / name)
    return project


def run_gate(project: TempProject, *args: str, path: str | None = None) -> Run:
    """``python -m deploytools.gate ARGS`` in the project (what ``nox -s verify`` runs);
    ``path``: the PATH it gets (default: this process's)."""
    env = project.environ({"PATH": path} if path is not None else None)
    argv = [sys.executable, "-m", "deploytools.gate", *args]
    proc = subprocess.run(
        argv,
        cwd=project.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=GATE_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    return Run(argv, proc.returncode, proc.stdout, proc.stderr)


def path_without_docker(tmp: Path) -> str:
    """A PATH with git and nothing of Docker: the gate's "no Docker client" case."""
    bin_dir = tmp / "bin-no-docker"
    bin_dir.mkdir()
    for tool in ("git",):
        found = shutil.which(tool)
        assert found is not None, f"{tool} is needed by this test"
        os.symlink(found, bin_dir / tool)
    return str(bin_dir)
