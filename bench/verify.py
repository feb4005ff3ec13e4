"""The verify gate's wall time on the example project, with and without a Docker client, and
each check's own time (what the checks running at once save: the sum of their times against
the wall time). Target: under 10 s without Docker checks on the 2-core machines (issue 15).

Each run is a new process, as CI runs it (``python -m deploytools.gate --json``, in the
checkout's root: the example project). Rerun: ``python bench/verify.py [RUNS]`` (default 5).
"""

from __future__ import annotations

import json
import os
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


def run(path: str) -> tuple[float, dict[str, Any]]:
    env = {**os.environ, "PATH": path, "NO_COLOR": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "deploytools.gate", "--json"],
        cwd=ROOT,
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


def measure(label: str, path: str, runs: int) -> None:
    samples = [run(path) for _ in range(runs)]
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


if __name__ == "__main__":
    main()
