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


def run_gate(
    project: TempProject,
    *args: str,
    path: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = GATE_TIMEOUT,
) -> Run:
    """``python -m deploytools.gate ARGS`` in the project (what ``nox -s verify`` runs);
    ``path``: the PATH it gets (default: this process's); ``env``: more variables."""
    env = project.environ({**(env or {}), **({"PATH": path} if path is not None else {})})
    argv = [sys.executable, "-m", "deploytools.gate", *args]
    proc = subprocess.run(
        argv,
        cwd=project.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
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


def image_gate_project(path: Path, image_name: str) -> TempProject:
    """``gate_project`` with what the example's image is built from (Dockerfile, requirements,
    the wheelhouse linked in), its compose environments (staging, prod) on the production file
    plus the test override (local base image, no network for the build, host network), their
    image named ``image_name``: ``--env staging --env prod`` builds it as a deploy does."""
    from tests.support.deployproject import _link_tree

    project = gate_project(path)
    for name in ("Dockerfile", "requirements.txt"):
        shutil.copy2(ROOT / "example" / name, path / "example" / name)
    _link_tree(ROOT / "example" / "wheelhouse", path / "example" / "wheelhouse")
    deploy = project.file("config/deploy.toml")
    single = 'files = ["docker-compose.prod.yml"]'
    text = deploy.read_text()
    assert text.count(single) == 2, "staging and prod name the production file alone"
    files = '["docker-compose.prod.yml", "docker-compose.test.yml"]'
    both = f'files = {files}, image_name = "{image_name}"'
    deploy.write_text(text.replace(single, both))
    return project
