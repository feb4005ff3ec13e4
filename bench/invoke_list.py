"""How much deploytools adds to `invoke --list`: the project's tasks vs an empty tasks.py.

Each run is a new process (what an operator feels when typing a command). Prints the medians
and their ratio; target ratio <= 1.3 (issue 2). Rerun: `python bench/invoke_list.py [RUNS]`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INVOKE = [sys.executable, "-m", "invoke"]


def timed_runs(cwd: Path, runs: int) -> list[float]:
    subprocess.run([*INVOKE, "--list"], cwd=cwd, check=True, capture_output=True)  # warm .pyc
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([*INVOKE, "--list"], cwd=cwd, check=True, capture_output=True)
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    with tempfile.TemporaryDirectory() as empty:
        Path(empty, "tasks.py").write_text(
            "from invoke import task\n\n\n@task\ndef noop(c):\n    pass\n"
        )
        baseline = timed_runs(Path(empty), runs)
    project = timed_runs(ROOT, runs)
    base_med, proj_med = statistics.median(baseline), statistics.median(project)
    print(
        f"invoke --list, {runs} runs each (median): empty tasks.py {base_med * 1000:.0f} ms, "
        f"deploytools {proj_med * 1000:.0f} ms, ratio {proj_med / base_med:.2f} (target <= 1.30)"
    )


if __name__ == "__main__":
    main()
