"""The verify gate's wall time on the example project, with and without a Docker client, and
each check's own time (what the checks running at once save: the sum of their times against
the wall time). Target: under 10 s without Docker checks on the 2-core machines (issue 15).

A third case selects only the compose environments (``--env staging --env prod``): the
migration round trip then builds the backend image and runs alembic in it. It runs on a copy
of the example whose compose environments add the test override (the local base image, no
network for the build: this machine has no registry), as the tests do; the build cache is
warm after the first run, as on a CI runner that keeps it.

Each run is a new process, as CI runs it (``python -m deploytools.gate --json``, in the
checkout's root: the example project). Rerun: ``python bench/verify.py [RUNS]`` (default 5).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def path_without_docker(farm: Path) -> str:
    """PATH with every program but ``docker``: a directory that holds one is replaced by
    ``farm``, links to all of its other programs."""
    dirs = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and Path(entry, "docker").exists():
            for program in Path(entry).iterdir():
                link = farm / program.name
                if program.name != "docker" and not link.exists():
                    link.symlink_to(program)
            entry = str(farm)
        if entry not in dirs:
            dirs.append(entry)
    return os.pathsep.join(dirs)


def compose_copy(target: Path) -> Path:
    """The example's project in ``target``, its compose environments on the production file
    plus the test override; the wheelhouse hard-linked (copied across file systems)."""
    ignore = shutil.ignore_patterns("__pycache__", ".deploytools", "wheelhouse", "*.env")
    shutil.copytree(ROOT / "config", target / "config", ignore=ignore)
    shutil.copytree(ROOT / "example", target / "example", ignore=ignore)
    for name in ("README.md", ".squawk.toml"):
        shutil.copy2(ROOT / name, target / name)
    wheels = target / "example" / "wheelhouse"
    wheels.mkdir()
    for wheel in (ROOT / "example" / "wheelhouse").resolve().iterdir():
        try:
            os.link(wheel, wheels / wheel.name)
        except OSError:
            shutil.copy2(wheel, wheels / wheel.name)
    deploy = target / "config" / "deploy.toml"
    files = '["docker-compose.prod.yml", "docker-compose.test.yml"]'
    deploy.write_text(
        deploy.read_text().replace('files = ["docker-compose.prod.yml"]', f"files = {files}")
    )
    return target


def run(path: str, *args: str, cwd: Path = ROOT) -> tuple[float, dict[str, Any]]:
    env = {**os.environ, "PATH": path, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "deploytools.gate", "--json", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        sys.exit(f"the gate exited {done.returncode}: {done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    return wall, report


def measure(label: str, path: str, runs: int, *args: str, cwd: Path = ROOT) -> None:
    samples = [run(path, *args, cwd=cwd) for _ in range(runs)]
    walls = sorted(samples, key=lambda s: s[0])
    wall, report = walls[len(walls) // 2]
    per_check: dict[str, float] = {}
    for result in report["results"]:
        key = f"{result['check']}[{result['target']}]"
        per_check[key] = result["seconds"]
    print(
        f"{label}: wall median {wall:.2f} s (min {walls[0][0]:.2f}, max {walls[-1][0]:.2f}) over "
        f"{runs} runs; gate's own time {report['seconds']:.2f} s; sum of check times "
        f"{sum(per_check.values()):.2f} s; statuses "
        f"{dict(sorted(_count(report).items()))}"
    )
    for key, seconds in sorted(per_check.items(), key=lambda kv: -kv[1]):
        print(f"    {key:<34} {seconds:6.2f} s")


def _count(report: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in report["results"]:
        counts[result["status"]] = counts.get(result["status"], 0) + 1
    return counts


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    run(os.environ.get("PATH", ""))  # warm the .pyc files and the disk cache
    print(f"CPUs: {os.cpu_count()}; target: under 10 s without Docker checks")
    with tempfile.TemporaryDirectory() as farm:
        measure("without a Docker client", path_without_docker(Path(farm)), runs)
    measure("with the Docker client", os.environ.get("PATH", ""), runs)
    with tempfile.TemporaryDirectory() as copy:
        project = compose_copy(Path(copy) / "project")
        compose_only = ("--env", "staging", "--env", "prod")
        run(os.environ.get("PATH", ""), *compose_only, cwd=project)  # the build cache
        label = "with Docker, compose environments only (round trip in the image)"
        measure(label, os.environ.get("PATH", ""), runs, *compose_only, cwd=project)


if __name__ == "__main__":
    main()
