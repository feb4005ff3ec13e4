"""``invoke deploy`` and ``invoke rollback`` on the example stack, against doing it without us.

In one run, on the real Docker engine with the compose runtime (production compose file + the
test override: host network, local base image, wheelhouse), PostgreSQL and Redis started here on
127.0.0.1 (and a dockerd of its own), in a temporary git copy of this checkout with an
environment ``bench``:

(a) ``invoke deploy --env bench`` wall time against its inherent steps run by hand: pg_dump +
    the same full read that verifies it, ``docker compose build``, the pending revisions'
    offline SQL (``alembic upgrade 0002:head --sql``, what the deploy's safety lint reads) and
    ``alembic upgrade head``, each in a one-off container of the new image (``docker compose
    run --rm --no-deps backend``),
    ``docker compose up -d``, polling the containers' state (every 0.5 s) and GET /health
    (every 0.1 s, 2 passes in a row, the new release answering) as the deploy does, and the
    Celery ping (every second until a worker answers) + canary. Overhead target <= 10 %.
(b) the same deploy by ``bench/baseline_deploy.sh``, a typical script that sleeps 20 s + 10 s
    instead of waiting for health and never checks Celery: ratio deploytools / script.
(c) ``invoke rollback --tag T`` with the tag's images present (target <= 10 s) against
    ``bench/baseline_rollback.sh``: git worktree of the tag + compose build + ``up --wait``,
    with the layer cache (warm) and without it (NO_CACHE=1: the cache lost the tag's layers).

Every deploy ships a new commit (its change lies outside the image, so each build differs
only by the release id) onto a database of USERS users, first brought back to revision 0002 so
that each deploy runs the same data migration (0003). The kinds are interleaved, in a rotating
order, so that a slow spell of the machine hits all of them, and each run starts after a
``sync`` and a pause. Run as root after ``python tests/provision.py``:
``.venv/bin/python bench/deploy_rollback.py [--runs N] [--storage-driver overlay2]``
(N=5 on 2 cores: about 27 min with vfs, as the tests run the engine, 17 min with overlay2).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "example"))

from tests.support import parts, procs  # noqa: E402
from tests.support.docker_engine import DOCKERD_FLAGS, DockerEngine  # noqa: E402
from tests.support.postgres_server import PostgresServer  # noqa: E402
from tests.support.procs import free_port  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

ENV = "bench"
COMPOSE_FILES = ("example/docker-compose.prod.yml", "example/docker-compose.test.yml")
NOT_COPIED = ("backups", "bench", "tests", ".deploytools")
COMMAND_TIMEOUT = 900.0  # any one deploy, rollback or command
PROBE_INTERVAL, PROBE_PASSES, HEALTH_TIMEOUT = 0.1, 2, 180.0  # deploy.toml's defaults
MIN_HEALTHY = 5.0  # probe.min_healthy: once healthy, the deploy watches it this much longer
DEPLOY_STEPS = ("backup", "build", "migrate", "start", "wait healthy", "verify celery")
RERUN = (
    "python bench/deploy_rollback.py --runs {runs} --users {users} --settle {settle:g}"
    " --storage-driver {storage_driver}"
)
PHASE = re.compile(r"^\[\d+/\d+\] (\w+)")
TOML = """
[environments.bench]
env_file = "config/bench.env"
env_example = "config/staging.env.example"
runtime = "compose"
compose = {{ project_name = "{name}", directory = "example", image_name = "{name}", \
files = ["docker-compose.prod.yml", "docker-compose.test.yml"] }}

[environments.bench.services.celery-worker]
compose_health = false
"""


Runs = list[dict[str, float]]


class BenchError(RuntimeError):
    pass


def run(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise BenchError(f"{' '.join(argv[:4])} ... exited {done.returncode}:\n{output}")
    return done


def run_phases(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> dict[str, float]:
    """Run a baseline script; time it and each of its ``[k/n] phase`` sections."""
    started = time.perf_counter()
    marks: list[tuple[str, float]] = []
    lines: list[str] = []
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watchdog = threading.Timer(COMMAND_TIMEOUT, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if found := PHASE.match(line):
                marks.append((found.group(1), time.perf_counter()))
        proc.wait()
    finally:
        watchdog.cancel()
    ended = time.perf_counter()
    if proc.returncode != 0:
        raise BenchError(f"{argv[-1]} exited {proc.returncode}:\n" + "\n".join(lines[-40:]))
    times = {"wall": ended - started}
    for (name, at), (_, until) in zip(marks, [*marks[1:], ("", ended)], strict=True):
        times[name] = until - at
    return times


@contextmanager
def timed(times: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    times[name] = time.perf_counter() - started


class PrivateEngine(DockerEngine):
    """A dockerd of our own (own socket, data root and containerd), as tests/support starts one.

    Test sessions on the same machine start and stop the default engine (and its containers)
    whenever they like; a bench run of several minutes must not depend on them. The first
    build in it is cold (the wheel layer), which the uncounted first deploy absorbs.
    ``driver`` replaces the tests' vfs (slow: every layer and container is a full copy).
    """

    OWN = (("data-root", "data"), ("exec-root", "exec"), ("pidfile", "dockerd.pid"))

    def __init__(self, driver: str) -> None:
        super().__init__()
        self.driver = driver

    def start(self) -> None:
        if self._proc is not None and self._running():
            return
        os.environ["DOCKER_HOST"] = f"unix://{self._dir}/docker.sock"  # for every child too
        dockerd = parts.program("dockerd")
        if dockerd is None:
            raise BenchError(f"dockerd not found: {parts.PROVISION}")
        own = [f"--{flag}={self._dir}/{name}" for flag, name in self.OWN]
        flags = [f for f in DOCKERD_FLAGS if not f.startswith("--storage-driver")]
        own += [f"--storage-driver={self.driver}", f"--host={os.environ['DOCKER_HOST']}"]
        argv = [dockerd, *flags, *own]
        self._proc = procs.start(argv, self._log, cwd=self._dir)
        procs.wait_until(self._answers, "dockerd", self._proc, self._log, timeout=90)

    def stop(self) -> None:
        """Stop dockerd, then unmount what it leaves mounted (exec/netns/default) for rmtree."""
        super().stop()
        prefix = f"{self._dir.resolve()}/"
        with open("/proc/self/mounts") as mounts:
            points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", point], check=False, timeout=60)


class Project:
    """A git copy of this checkout with a ``bench`` compose environment, and what runs in it."""

    def __init__(self, path: Path, docker: str) -> None:
        self.path = path
        self.docker = docker
        self.name = f"dtbench-{uuid.uuid4().hex[:8]}"  # compose project and image name
        self.env_file = path / "config" / f"{ENV}.env"
        self.commits = 0
        self.tags: list[str] = []  # releases recorded by `invoke deploy`, oldest first

    # -- set-up ----------------------------------------------------------------------------

    def create_files(self) -> None:
        """Copy the checkout (tracked and new files), add the environment, commit, env.init."""
        listed = run(["git", "ls-files", "-z", "-co", "--exclude-standard"], ROOT).stdout
        for relative in filter(None, listed.split("\0")):
            source = ROOT / relative
            if relative.split("/")[0] not in NOT_COPIED and source.is_file():
                (self.path / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, self.path / relative)
        wheelhouse = ROOT / "example" / "wheelhouse"
        if not wheelhouse.is_dir():
            raise BenchError(f"{wheelhouse} is missing: run `python tests/provision.py` first")
        shutil.copytree(wheelhouse, self.path / "example" / "wheelhouse")
        # A checkout of a tag must be buildable (baseline_rollback.sh): commit the wheelhouse.
        ignore = (self.path / ".gitignore").read_text().splitlines()
        kept = [line for line in ignore if line != "example/wheelhouse/"] + ["backups/"]
        (self.path / ".gitignore").write_text("\n".join(kept) + "\n")
        with (self.path / "config" / "deploy.toml").open("a") as toml:
            toml.write(TOML.format(name=self.name))
        run(["git", "init", "-q", "-b", "main"], self.path)
        self.commit("bench project")
        self.invoke("env.init", "--env", ENV)

    def configure(self, values: Mapping[str, str]) -> None:
        """Edit the env file made by env.init (URLs and ports of our servers), then validate."""
        from deploytools.env.file import update
        from deploytools.hosts.local import LocalHost

        update(LocalHost(), str(self.env_file), values)
        self.invoke("env.validate", "--env", ENV)

    def commit(self, message: str) -> None:
        """A new commit, so that the next deploy is a new release (change outside the image)."""
        self.commits += 1
        (self.path / "BENCH_RUN").write_text(f"{self.commits}\n")
        run(["git", "add", "-A"], self.path)
        identity = ["-c", "user.name=deploytools bench", "-c", "user.email=bench@localhost"]
        run(["git", *identity, "commit", "-q", "--no-gpg-sign", "-m", message], self.path)

    def values(self) -> dict[str, str]:
        from dotenv import dotenv_values

        return {k: v or "" for k, v in dotenv_values(self.env_file).items()}

    # -- the toolkit -----------------------------------------------------------------------

    def invoke(self, *args: str) -> tuple[float, dict[str, Any]]:
        """``invoke ARGS`` as an operator runs it; (wall seconds, its --json result if any)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_")}
        env.update(PYTHONPATH=str(self.path), NO_COLOR="1", COLUMNS="200")
        json_mode = args[0] in ("deploy", "rollback")
        started = time.perf_counter()
        done = run(
            [sys.executable, "-m", "invoke", *args, *(["--json"] if json_mode else [])],
            self.path,
            env,
        )
        wall = time.perf_counter() - started
        return wall, json.loads(done.stdout) if json_mode else {}

    # -- by hand and by script -------------------------------------------------------------

    def compose_env(self, release: str) -> dict[str, str]:
        return {
            **os.environ,
            "RELEASE_ID": release,
            "IMAGE_NAME": self.name,
            "ENV_FILE": str(self.env_file),
            "COMPOSE_PROJECT_NAME": self.name,
            "COMPOSE_FILE": ":".join(COMPOSE_FILES),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def compose(self, release: str, *args: str) -> str:
        argv = [self.docker, "compose", "--env-file", str(self.env_file), *args]
        return run(argv, self.path, self.compose_env(release)).stdout

    def alembic(self, *args: str) -> None:
        env = {**self.compose_env(""), "DATABASE_URL": self.values()["DATABASE_URL"]}
        run(["alembic", "-c", "example/alembic.ini", *args], self.path, env)

    def by_hand(self, release: str) -> dict[str, float]:
        """The deploy's inherent steps, one after the other, as an operator would type them."""
        from deploytools.dburl import normalise

        values = self.values()
        conn = normalise(values["DATABASE_URL"]).conn
        pg_env = {**os.environ, "PGPASSWORD": conn.password or ""}
        dump = self.path / "backups" / "hand" / f"{release}.dump"
        dump.parent.mkdir(parents=True, exist_ok=True)
        times: dict[str, float] = {}
        with timed(times, "backup"):
            run(
                ["pg_dump", "--format=custom", f"--file={dump}", f"--dbname={conn.uri}"],
                ROOT,
                pg_env,
            )
            run(["pg_restore", "--file=/dev/null", str(dump)], ROOT)
        with timed(times, "build"):
            self.compose(release, "build")
        with timed(times, "lint"):  # the SQL a reviewer reads, rendered by the new image
            self.compose(
                release, "run", "--rm", "--no-deps", "-T", "backend",
                "alembic", "-c", "alembic.ini", "upgrade", "0002:head", "--sql",
            )  # fmt: skip
        with timed(times, "migrate"):  # in the release's image, as the deploy runs it
            self.compose(
                release, "run", "--rm", "--no-deps", "-T", "backend",
                "alembic", "-c", "alembic.ini", "upgrade", "head",
            )  # fmt: skip
        with timed(times, "start"):
            self.compose(release, "up", "-d")
        with timed(times, "wait healthy"):
            self.wait_healthy(release, f"http://127.0.0.1:{values['PORT']}/health")
        with timed(times, "verify celery"):
            celery_check(values, release)
        times["wall"] = sum(times.values())
        return times

    def wait_healthy(self, release: str, url: str) -> None:
        """Both containers running and GET /health healthy on ``release``, PROBE_PASSES polls in
        a row, then still so for MIN_HEALTHY: what the deploy waits for (deploy.toml: the
        container healthchecks are not waited on, the probe and celery.verify check the same
        and more)."""
        import httpx

        from deploytools.probes.health import STATUS_INTERVAL
        from deploytools.runtime.compose import parse_ps

        deadline = time.monotonic() + HEALTH_TIMEOUT
        passes, asked = 0, -STATUS_INTERVAL
        held: float | None = None  # when it became healthy
        with httpx.Client(trust_env=False) as client:
            while held is None or time.monotonic() - held < MIN_HEALTHY:
                tick = time.monotonic()
                if tick - asked >= STATUS_INTERVAL:  # `ps` no more often than the deploy asks
                    rows = parse_ps(self.compose(release, "ps", "--format", "json"))
                    asked = tick
                healthy = len(rows) == 2 and all(r.get("State") == "running" for r in rows)
                if healthy:
                    try:
                        answer = client.get(url, timeout=2.0)
                        body = answer.json() if answer.status_code == 200 else {}
                        healthy = body.get("status") == "healthy" and body.get("release") == release
                    except (httpx.HTTPError, ValueError):
                        healthy = False
                passes = passes + 1 if healthy else 0
                if held is not None and not healthy:
                    raise BenchError(f"stack healthy, then not, while held: {rows}")
                if held is None and passes >= PROBE_PASSES:
                    held = time.monotonic()
                if held is None and tick > deadline:
                    raise BenchError(f"stack not healthy after {HEALTH_TIMEOUT:.0f}s: {rows}")
                time.sleep(max(0.0, tick + PROBE_INTERVAL - time.monotonic()))

    def deploy(self) -> dict[str, float]:
        """``invoke deploy``: wall and step times; its release tag is kept for the rollbacks."""
        wall, result = self.invoke("deploy", "--env", ENV)
        self.tags.append(next(s["tag"] for s in result["steps"] if "tag" in s))
        return {"wall": wall, **steps_of(result)}

    def script(
        self, name: str, *args: str, extra: Mapping[str, str] | None = None
    ) -> dict[str, float]:
        env = {**self.compose_env(""), **(extra or {})}
        return run_phases(["bash", str(ROOT / "bench" / name), *args], self.path, env)

    def clean_up(self) -> None:
        """Remove the bench's containers and images (the project directory goes with tmp)."""
        try:
            self.compose("x", "down", "--remove-orphans", "--timeout", "10")
        finally:
            listed = run(
                [self.docker, "image", "ls", "--filter", f"reference={self.name}", "--format",
                 "{{.Repository}}:{{.Tag}}"],
                ROOT,
            ).stdout.split()  # fmt: skip
            if listed:
                run([self.docker, "image", "rm", *listed], ROOT)


def celery_check(values: Mapping[str, str], release: str) -> None:
    """One worker answers a ping (asked every second: the worker may still be starting, and a
    broadcast reaches only those already listening), and the canary comes back from the new
    release."""
    from exampleapp.celeryconf import make_celery
    from exampleapp.settings import load

    app = make_celery(load(dict(values)))
    try:
        deadline = time.monotonic() + 10.0  # deploy.toml's celery.ping_timeout
        while not app.control.ping(timeout=1.0, limit=1):
            if time.monotonic() > deadline:
                raise BenchError("no Celery worker answered the ping")
        answer = app.send_task("deploytools.canary").get(timeout=15)
        if answer["release"] != release:
            raise BenchError(f"the canary ran on release {answer['release']}, not {release}")
    finally:
        app.close()


def steps_of(result: dict[str, Any]) -> dict[str, float]:
    """Each step's time, and the pipeline's (less than their sum: some steps run together)."""
    times = {s["name"]: float(s["duration"]) for s in result["steps"]}
    times["in steps"] = float(result["duration"])
    return times


def seed(url: str, users: int) -> None:
    """Rows for the backup and the data migration to work on (after 0003: split names)."""
    import psycopg

    with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=10) as conn:
        conn.execute(
            "INSERT INTO users (first_name, last_name, email) SELECT 'First' || i, 'Last' || i,"
            " 'user' || i || '@example.com' FROM generate_series(1, %s) AS i",
            (users,),
        )
        conn.execute(
            "INSERT INTO orders (user_id, amount_cents, note) SELECT 1 + i %% %s, i %% 10000,"
            " 'order ' || i FROM generate_series(1, %s) AS i",
            (users, 2 * users),
        )


def create_app_database(pg: PostgresServer, password: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg.url("postgres"), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE ROLE app LOGIN PASSWORD {}").format(sql.Literal(password)))
        conn.execute("CREATE DATABASE app OWNER app")


# -- the measurements ---------------------------------------------------------------------------


def settle(seconds: float) -> None:
    """The same start for every measured run: the previous one's container copies written out
    (vfs: ~400 MB per container) and its fresh containers past their busy first seconds."""
    os.sync()
    time.sleep(seconds)


def deploys(project: Project, runs: int, pause: float) -> dict[str, Runs]:
    """``runs`` deploys of each kind, interleaved in a rotating order; times by kind."""
    found: dict[str, Runs] = {"invoke": [], "hand": [], "script": []}
    kinds = list(found)
    for n in range(runs):
        for kind in kinds[n % 3 :] + kinds[: n % 3]:
            project.alembic("downgrade", "0002")
            project.commit(f"{kind} deploy {n + 1}")
            settle(pause)
            if kind == "invoke":
                times = project.deploy()
            elif kind == "hand":
                times = project.by_hand(f"hand{n + 1}")
            else:
                times = project.script("baseline_deploy.sh")
            found[kind].append(times)
            print(f"  deploy {n + 1}/{runs} {kind:<13}{times['wall']:6.1f}s", flush=True)
    return found


def rollbacks(project: Project, runs: int, pause: float) -> dict[str, Runs]:
    """``invoke rollback`` and the rebuild script (warm, then cold cache), in turn.

    Each changes the running release; a toolkit rollback may not target the release the
    journal says is running either: targets rotate over the recorded deploys (three or more).
    """
    found: dict[str, Runs] = {"invoke": [], "rebuild": [], "rebuild cold": []}
    tags = list(project.tags)
    running = recorded = tags[-1]  # what runs now may be a hand or script release: no matter
    for n in range(runs):
        for kind in found:
            target = next(t for t in tags if t != running and (kind != "invoke" or t != recorded))
            settle(pause)
            if kind == "invoke":
                wall, result = project.invoke("rollback", "--tag", target, "--env", ENV)
                times = {"wall": wall, **steps_of(result)}
                recorded = target
            else:
                cold = {"NO_CACHE": "1"} if kind == "rebuild cold" else {}
                times = project.script("baseline_rollback.sh", target, extra=cold)
            running = target
            tags.append(tags.pop(tags.index(target)))  # least recently used first
            found[kind].append(times)
            print(f"  rollback {n + 1}/{runs} {kind:<13}{times['wall']:6.1f}s", flush=True)
    return found


# -- the report ----------------------------------------------------------------------------------


def med(runs: Runs, key: str = "wall") -> float:
    return statistics.median(r.get(key, 0.0) for r in runs)


def spread(runs: Runs) -> str:
    walls = [r["wall"] for r in runs]
    return f"{statistics.median(walls):6.1f}s  ({min(walls):.1f}-{max(walls):.1f})"


def paired(a: Runs, b: Runs) -> float:
    """Median of the run-by-run ratios a/b (runs n of each kind ran back to back)."""
    return statistics.median(x["wall"] / y["wall"] for x, y in zip(a, b, strict=True))


def report(deployed: dict[str, Runs], rolled: dict[str, Runs]) -> None:
    inv, hand, script = deployed["invoke"], deployed["hand"], deployed["script"]
    # `up -d` is the same command on both sides and swings by 10 s or more on vfs: without it,
    # what remains is the toolkit's own time (its extra checks, its interpreter, its journal).
    extra = statistics.median(
        (i["wall"] - i["start"]) - (h["wall"] - h["start"]) for i, h in zip(inv, hand, strict=True)
    )
    print(f"\n(a)+(b) deploy, {len(inv)} run(s) of each: median wall (min-max)")
    print(f"  invoke deploy                    {spread(inv)}")
    print(f"  same steps by hand (sum)         {spread(hand)}")
    print(f"  baseline_deploy.sh (sleeps)      {spread(script)}")
    print(f"  overhead, toolkit over by hand   {paired(inv, hand) - 1:+7.1%}   (target <= +10%)")
    print(f"    `up -d` left out of both       {extra:+6.1f}s = {extra / med(hand):+.1%} of hand")
    print(f"  ratio deploytools / baseline     {paired(inv, script):7.2f}")
    print("  median s per step                invoke  by hand  script")
    for step in DEPLOY_STEPS:
        mine = f"{med(script, step):8.1f}" if step in script[0] else ""
        print(f"    {step:<29}{med(inv, step):8.1f}{med(hand, step):9.1f}{mine}")
    print(f"    {'sleep 20, curl, sleep 10':<29}{'':17}{med(script, 'wait'):8.1f}")
    print("    (the deploy waits for health while it verifies Celery)")
    own = statistics.median(sum(r[s] for s in ("validate env", "lock", "snapshot", "record"))
                            for r in inv)  # fmt: skip
    print(f"    {'validate, lock, snapshot, record':<32}{own:5.1f}")
    print(f"    {'interpreter, imports, summary':<32}{med(inv) - med(inv, 'in steps'):5.1f}")

    inv, warm, cold = rolled["invoke"], rolled["rebuild"], rolled["rebuild cold"]
    docker = statistics.median(r["start"] + max(r["wait healthy"], r["verify celery"]) for r in inv)
    print(f"\n(c) rollback, {len(inv)} run(s) of each: median wall (min-max)")
    print(f"  invoke rollback (images kept)    {spread(inv)}   (target <= 10 s)")
    print(f"    of which `up` + the checks     {docker:6.1f}s, the rest {med(inv) - docker:.1f}s")
    print(f"  baseline_rollback.sh (rebuild)   {spread(warm)}")
    print(f"  the same with NO_CACHE=1         {spread(cold)}")
    print(f"  ratio deploytools / rebuild      {paired(inv, warm):7.2f}")
    print(f"  ratio deploytools / cold rebuild {paired(inv, cold):7.2f}")
    steps = [s for s in inv[0] if s not in ("wall", "in steps")]
    print("  invoke rollback, median s per step:")
    print("    " + ", ".join(f"{s} {med(inv, s):.1f}" for s in steps))
    for name, runs in (("rebuild", warm), ("cold rebuild", cold)):
        phases = ", ".join(f"{s} {med(runs, s):.1f}" for s in runs[0] if s != "wall")
        print(f"  {name} script, median s per phase: {phases}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each kind (default 3)")
    parser.add_argument("--users", type=int, default=20000, help="rows in users (orders: 2x)")
    parser.add_argument("--settle", type=float, default=10.0, help="pause before each run (s)")
    parser.add_argument(
        "--storage-driver", default="vfs", help="of our dockerd (vfs as in the tests, overlay2)"
    )
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2 (rollbacks rotate over 3+ recorded releases)")
    started, load = time.perf_counter(), os.getloadavg()[0]
    with ExitStack() as stack:
        engine = stack.enter_context(PrivateEngine(args.storage_driver))
        pg = stack.enter_context(PostgresServer())
        redis = stack.enter_context(RedisServer())
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="deploytools-bench-"))
        project = Project(Path(tmp), engine.docker)
        stack.callback(project.clean_up)
        print(f"set-up: copy of {ROOT} in {tmp}, compose project {project.name}", flush=True)
        project.create_files()
        # env.init made the passwords; the servers are ours: point the URLs at them.
        generated = project.values()["POSTGRES_PASSWORD"]
        create_app_database(pg, generated)
        values = {
            "DATABASE_URL": f"postgresql+psycopg://app:{generated}@127.0.0.1:{pg.port}/app",
            "REDIS_URL": redis.url(0),
            "CELERY_BROKER_URL": redis.url(1),
            "CELERY_RESULT_BACKEND": redis.url(2),
            "HOST": "127.0.0.1",
            "PORT": str(free_port()),
            "OPENAI_API_KEY": f"sk-bench{uuid.uuid4().hex}",
        }
        project.configure(values)
        print(f"  first deploy (not counted)  {project.deploy()['wall']:6.1f}s", flush=True)
        seed(values["DATABASE_URL"], args.users)
        deployed = deploys(project, args.runs, args.settle)
        rolled = rollbacks(project, args.runs, args.settle)
    print(
        f"\nexample stack on compose {engine.compose_version}, {args.storage_driver} storage, "
        f"{os.cpu_count()} CPUs, {args.users} users / {2 * args.users} orders, sync + "
        f"{args.settle:g} s pause before each run; load average "
        f"{load:.1f} at start, {os.getloadavg()[0]:.1f} at end; whole run "
        f"{(time.perf_counter() - started) / 60:.0f} min"
    )
    report(deployed, rolled)
    print(f"\nrerun (as root, venv python): {RERUN.format(**vars(args))}")


if __name__ == "__main__":
    main()
