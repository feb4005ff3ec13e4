"""How long ``hosts.check`` takes on 1 and on 8 hosts, and how many SSH commands it runs on each.

The checks of ``deploytools.hostcheck.check_hosts`` (what ``invoke hosts.check`` and a deploy's
"check hosts" stage run) on simulated hosts, each an sshd of its own on loopback
(tests/support/sshd.py), for the process runtime (the app's interpreter) and the compose one
(the docker CLI and compose v2 against this machine's Docker engine, which must run), with
``rollout.max_parallel = 8``. Each run opens new connections, as a task does. Counted per host:
commands (``Host.run``: one SSH exec each, i.e. an sshd fork and a shell on the host) and SFTP
look-ups (``Host.exists``). The cases run interleaved so that a slow spell of the machine hits
all of them; each figure is the median of ``--runs``. Every simulated host is this machine:
the hosts' sshd and shells share its cores. Run as root after ``python tests/provision.py``:
``.venv/bin/python bench/hosts_check.py [--runs N]`` (N=7: about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploytools.config import EnvironmentSettings, HostSettings
from deploytools.hostcheck import check_hosts
from tests.support.sshd import CountingSshHost, SshHosts, counting

COUNTS = (1, 8)


def once(settings: EnvironmentSettings, hosts: list[HostSettings]) -> tuple[float, Counter[str]]:
    """One ``check_hosts`` of ``hosts``: its wall time and what each host was asked (mean)."""
    made: list[CountingSshHost] = []
    started = time.perf_counter()
    reports = check_hosts(settings, hosts, connect=counting(settings.timeouts, made))
    wall = time.perf_counter() - started
    failed = [f"{r.host}: {c.name} {c.detail}" for r in reports for c in r.failed()]
    if failed:
        raise SystemExit("a check failed: " + "; ".join(failed))
    asked = sum((h.counts for h in made), Counter[str]())
    return wall, Counter({k: v // len(hosts) for k, v in asked.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="checks per case (default 7)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with SshHosts() as made:
        confs = [
            made.make(f"check-{i}").host_settings().model_copy(update={"primary": i == 1})
            for i in range(1, max(COUNTS) + 1)
        ]
        settings = {
            runtime: EnvironmentSettings(
                name="bench",
                env_file="e",
                env_example="x",
                runtime=runtime,
                hosts=confs,
                rollout={"max_parallel": 8},
                **({"compose": {"project_name": "bench"}} if runtime == "compose" else {}),
            )
            for runtime in ("process", "compose")
        }
        cases = [(runtime, n) for runtime in settings for n in COUNTS]
        walls: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
        asked: dict[tuple[str, int], Counter[str]] = {}
        for case in cases:  # warm: the first SSH handshakes and the engine's first answer
            once(settings[case[0]], confs[: case[1]])
        for n in range(args.runs):
            for runtime, count in cases[n % len(cases) :] + cases[: n % len(cases)]:
                wall, asked[runtime, count] = once(settings[runtime], confs[:count])
                walls[runtime, count].append(wall)
    print(
        f"\nhosts.check, {os.cpu_count()} CPUs, max_parallel 8, median of {args.runs} "
        f"(load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end)"
    )
    print(f"  {'runtime':<9}{'hosts':>6}{'median s':>10}  {'(min-max)':<13}"
          f"{'x 1 host':>9}{'commands/host':>15}{'sftp/host':>11}")  # fmt: skip
    for runtime, count in cases:
        times = walls[runtime, count]
        ratio = statistics.median(times) / statistics.median(walls[runtime, 1])
        spread = f"({min(times):.2f}-{max(times):.2f})"
        tally = asked[runtime, count]
        print(f"  {runtime:<9}{count:>6}{statistics.median(times):>10.2f}  {spread:<13}"
              f"{ratio:>9.2f}{tally['run']:>15}{tally['exists']:>11}")  # fmt: skip
    print(f"\nrerun (as root, venv python): python bench/hosts_check.py --runs {args.runs}")


if __name__ == "__main__":
    main()
