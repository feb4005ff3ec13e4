"""How a deploy's time grows with its hosts and with its batches.

The same deploy (process runtime, the trial-shaped ``shop`` of
tests/integration/deploy/test_deploy_hosts.py: tests/support/shophosts.py) on 1, 2, 4 and 8
simulated hosts, each an sshd of its own on loopback (tests/support/sshd.py), the database a
PostgreSQL started here, with ``rollout.max_parallel = 8`` and one batch; then on 8 hosts with
``batch_size = 2`` (4 batches). Each case is an environment of one project with hosts of its
own. Every deploy ships a new commit, so each builds, ships and starts a new release on every
host; the first deploy of each environment (nothing running yet) is not counted.

What is timed: ``invoke deploy`` as an operator runs it (wall, interpreter start included),
each of its stages as the journal's ``step.done`` records says (check hosts, build, roll out,
...), and the CPU time of the controller (the invoke process and the commands it ran and
waited for: git, ...; not the hosts' sshd, shells and services). Every simulated host is this
machine, so the hosts' own work (unpacking, starting Python services, answering probes) shares
its 2 cores: the wall time grows with hosts where real hosts would each bring their own CPU;
the controller's CPU per host is what would still grow. The hosts' sessions do not run this
machine's root ~/.bashrc (``pyenv init``: 0.2 s of CPU per remote command; see
tests/support/sshd.py), as a server's non-interactive sessions usually do not. The cases run
interleaved, in a rotating order, so that a slow spell of the machine hits all of them; each
figure is the median of ``--runs``, and "x N=1" is the median of the run-by-run ratios to the
1-host deploy of the same round. Target: 8 hosts within 1.3 x one host. Run as root after
``python tests/provision.py``: ``.venv/bin/python bench/deploy_hosts.py [--runs N]
[--cases n1,n8]`` (N=3, every case: about 5 min on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import shophosts  # noqa: E402
from tests.support.cli import TempProject  # noqa: E402
from tests.support.postgres_server import PostgresServer  # noqa: E402
from tests.support.procs import service_port  # noqa: E402
from tests.support.sshd import SshHosts, SshTarget  # noqa: E402

TOKEN = "shop-bench-token-5e1d9c07"
# (environment, hosts, batch_size): one batch, then four batches of two.
CASES = (("n1", 1, "100%"), ("n2", 2, "100%"), ("n4", 4, "100%"), ("n8", 8, "100%"),
         ("n8b2", 8, 2))  # fmt: skip
MAX_PARALLEL = 8


@dataclass
class Case:
    env: str
    targets: list[SshTarget]
    batch_size: int | str
    ports: dict[str, str] = field(default_factory=dict)
    runs: list[dict[str, float]] = field(default_factory=list)

    @property
    def label(self) -> str:
        batches = "1 batch" if self.batch_size == "100%" else f"batch_size {self.batch_size}"
        return f"{len(self.targets)} host(s), {batches}"

    def config(self) -> dict[str, Any]:
        rollout = {"max_parallel": MAX_PARALLEL, "batch_size": self.batch_size}
        return shophosts.environment(self.env, self.targets, self.ports, rollout)


class Bench:
    def __init__(self, project: TempProject, cases: list[Case]) -> None:
        self.project = project
        self.cases = cases
        self.version = 0

    def deploy(self, case: Case) -> dict[str, float]:
        """A new commit deployed to ``case``; its wall time and its stages' durations."""
        self.version += 1
        shophosts.commit(self.project, self.version, f"bench {self.version} on {case.env}")
        started, cpu = time.perf_counter(), _children_cpu()
        run = shophosts.deploy(self.project, case.env)
        wall, cpu = time.perf_counter() - started, _children_cpu() - cpu
        if run.returncode != 0:
            kept = Path(tempfile.gettempdir()) / f"deploy_hosts-{case.env}-failed.log"
            kept.write_text(run.output)
            raise SystemExit(
                f"deploy --env {case.env} failed (whole output: {kept}):\n{run.output[-4000:]}"
            )
        served = shophosts.serving(case.ports)
        if len(set(served.values())) != 1 or None in served.values():
            raise SystemExit(f"after deploy --env {case.env}, the hosts serve {served}")
        return {"wall": wall, "cpu": cpu, **stages(shophosts.journal(case.targets[0], case.env))}


def _children_cpu() -> float:
    """User + system seconds of this process's children that ended (the deploy's invoke)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def stages(events: list[dict[str, Any]]) -> dict[str, float]:
    """The last deploy's stages: step name -> seconds, from its step.done records."""
    last = max(i for i, e in enumerate(events) if e["kind"] == "deploy.start")
    done = [e for e in events[last:] if e["kind"] == "step.done" and e.get("pipeline") == "deploy"]
    return {e["step"]: float(e["duration"]) for e in done}


def med(runs: list[dict[str, float]], key: str = "wall") -> float:
    return statistics.median(r.get(key, 0.0) for r in runs)


def report(cases: list[Case]) -> None:
    one = cases[0].runs
    steps = [s for s in cases[-1].runs[0] if s not in ("wall", "cpu")]
    width = max(len(c.label) for c in cases) + 2
    print(f"\nmedian of {len(one)} deploy(s) per case, seconds (min-max); x N=1: paired ratio")
    print(f"  {'case':<{width}}{'wall':>6}  {'(min-max)':<13}{'x N=1':>6}{'controller CPU':>16}")
    for case in cases:
        walls = [r["wall"] for r in case.runs]
        ratio = statistics.median(
            r["wall"] / o["wall"] for r, o in zip(case.runs, one, strict=True)
        )
        spread = f"({min(walls):.1f}-{max(walls):.1f})"
        cpu = med(case.runs, "cpu")
        row = f"  {case.label:<{width}}{med(case.runs):6.1f}  {spread:<13}{ratio:6.2f}"
        print(f"{row}{cpu:14.2f} s")
    print("\nmedian seconds per stage (journal step.done); 'outside steps': interpreter, site,")
    print("connections to the primary before the first step, the summary")
    names = [c.env for c in cases]
    print(f"  {'stage':<18}" + "".join(f"{n:>8}" for n in names))
    for step in steps:
        print(f"  {step:<18}" + "".join(f"{med(c.runs, step):8.2f}" for c in cases))
    outside = [
        statistics.median(
            r["wall"] - sum(v for k, v in r.items() if k not in ("wall", "cpu")) for r in c.runs
        )
        for c in cases
    ]
    print(f"  {'outside steps':<18}" + "".join(f"{o:8.2f}" for o in outside))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="deploys per case (default 3)")
    parser.add_argument("--settle", type=float, default=1.0, help="pause before each (s)")
    names = [env for env, _, _ in CASES]
    parser.add_argument(
        "--cases", default=",".join(names), help=f"which, comma-separated (default {names})"
    )
    args = parser.parse_args()
    chosen = [c for c in CASES if c[0] in args.cases.split(",")]
    if not chosen or chosen[0][0] != "n1":
        parser.error(f"--cases: n1 (the figure the others are compared to), then any of {names}")
    began, load = time.perf_counter(), os.getloadavg()[0]
    with ExitStack() as stack:
        hosts = stack.enter_context(SshHosts())
        pg = stack.enter_context(PostgresServer())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="deploytools-bench-")))
        cases = [
            Case(env, [hosts.make(f"{env}-{i}") for i in range(1, count + 1)], batch)
            for env, count, batch in chosen
        ]
        env_files: dict[str, str] = {}
        for case in cases:
            case.ports = {t.name: str(service_port()) for t in case.targets}
            url = pg.create_database(f"bench_{case.env}")
            url = url.replace("postgresql://", "postgresql+psycopg://", 1)
            env_files[case.env] = f"SHOP_API_TOKEN={TOKEN}\nDATABASE_URL={url}\n"
        project = shophosts.shop_project(tmp / "shop", env_files)
        shophosts.configure(project, {c.env: c.config() for c in cases})
        bench = Bench(project, cases)
        for case in cases:  # stopped before the servers and the hosts' roots go
            stack.callback(project.invoke, "stack.down", "--env", case.env, timeout=120)
        for case in cases:
            print(f"  first deploy on {case.label} (not counted)", flush=True)
            bench.deploy(case)
        for n in range(args.runs):
            for case in cases[n % len(cases) :] + cases[: n % len(cases)]:
                time.sleep(args.settle)
                case.runs.append(bench.deploy(case))
                wall = case.runs[-1]["wall"]
                print(f"  run {n + 1}/{args.runs} {case.label:<26}{wall:6.1f}s", flush=True)
    print(
        f"\nprocess runtime, {os.cpu_count()} CPUs, max_parallel {MAX_PARALLEL}; load average "
        f"{load:.1f} at start, {os.getloadavg()[0]:.1f} at end; whole run "
        f"{(time.perf_counter() - began) / 60:.1f} min"
    )
    report(cases)
    rerun = f"python bench/deploy_hosts.py --runs {args.runs} --cases {args.cases}"
    print(f"\nrerun (as root, venv python): {rerun}")


if __name__ == "__main__":
    main()
