"""A deployable copy of the project in a temporary git repository, driven by the real CLI.

``DeployProject(path)`` is what an operator has after cloning: ``tasks.py``, ``config/`` and the
tracked files of ``example/`` committed in a fresh repository, plus a ``deploy.toml`` of the
test's own (the repository's defaults and process commands, unique ports, state inside the
copy). Env files are made the operator's way: ``invoke env.init``, then values edited in,
then ``invoke env.validate`` must pass. deploytools itself is imported from this checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tomllib
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deploytools.config import deep_merge
from tests.support.cli import ROOT, Run, TempProject

EXAMPLE = ROOT / "example"
PROCESS_ENV = "local"
COMPOSE_ENV = "ctest"
COMPOSE_FILES = ["docker-compose.prod.yml", "docker-compose.test.yml"]
DEPLOY_TIMEOUT = 900.0


def toml_text(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> str:
    """A TOML document for ``data`` (tables, strings, numbers, booleans, lists of those;
    a table in a list is written inline)."""
    scalars = {k: v for k, v in data.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    lines = [f"[{'.'.join(json.dumps(p) for p in prefix)}]"] if prefix and scalars else []
    lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in scalars.items()]
    text = "\n".join(lines) + ("\n\n" if lines else "")
    return text + "".join(toml_text(v, (*prefix, k)) for k, v in tables.items())


def _toml_value(value: Any) -> str:
    if isinstance(value, Mapping):
        pairs = (f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(pairs) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def repo_config() -> dict[str, Any]:
    return tomllib.loads((ROOT / "config/deploy.toml").read_text())


def process_env(probe_timeout: float = 10.0) -> dict[str, Any]:
    """The repository's ``local`` environment (its process commands), probes that give up soon."""
    env = repo_config()["environments"]["local"]
    return deep_merge(
        env,
        {
            "services": {"backend": {"probe": {"timeout": probe_timeout}}},
            "timeouts": {"stop": 5},
        },
    )


def compose_env(project_name: str, image_name: str) -> dict[str, Any]:
    """The example under compose: production file + host-network test override, own names."""
    return {
        "env_file": f"config/{COMPOSE_ENV}.env",
        "env_example": "config/staging.env.example",
        "runtime": "compose",
        "compose": {
            "project_name": project_name,
            "directory": "example",
            "files": COMPOSE_FILES,
            "image_name": image_name,
            "untracked_inputs": ["wheelhouse"],
        },
        "services": {
            "backend": {"probe": {"timeout": 120}},
            "celery-worker": {"probe": {"timeout": 120}, "compose_health": False},
        },
        # A worker boots while the deploy pings it: on a machine running other tests beside
        # (parallel workers, builds) it needs longer than the repository's 10 s.
        "celery": {"canary_timeout": 15, "ping_timeout": 60},
        "timeouts": {"stop": 5, "command": 900},
    }


def deploy_toml(
    environments: Mapping[str, Mapping[str, Any]], defaults: Mapping[str, Any] | None = None
) -> str:
    """A deploy.toml of ``defaults`` (else the repository's) and ``environments``."""
    base = repo_config()
    data = {
        "project": base["project"],
        "defaults": base["defaults"] if defaults is None else defaults,
        "environments": environments,
    }
    return toml_text(data)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class DeployProject(TempProject):
    """The project in a temp git repo; ``invoke``, ``git``, ``commit`` and journal readers."""

    def __init__(self, path: Path, *, wheelhouse: bool = False) -> None:
        path.mkdir(parents=True, exist_ok=True)
        super().__init__(path)
        for name in _tracked(EXAMPLE):
            target = path / "example" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(EXAMPLE / name, target)
        if wheelhouse:  # ignored by git like in a real clone; a compose build needs it
            _link_tree(EXAMPLE / "wheelhouse", path / "example/wheelhouse")
        # The repository's own .gitignore: a deploy must leave a clone's tree clean with it.
        shutil.copy2(ROOT / ".gitignore", path / ".gitignore")
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "operator@example.invalid")
        self.git("config", "user.name", "Operator")
        self.git("config", "commit.gpgsign", "false")

    # -- set-up -----------------------------------------------------------------------------

    def configure(
        self,
        environments: Mapping[str, Mapping[str, Any]],
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        """Write deploy.toml (``defaults``, else the repository's, + ``environments``) and
        commit the tree."""
        self.file("config/deploy.toml").write_text(deploy_toml(environments, defaults))
        self.commit("the project as cloned")

    def init_env(self, env: str, values: Mapping[str, str]) -> None:
        """``env.init``, then the values only a person knows, then ``env.validate`` must pass."""
        from deploytools.env.file import update
        from deploytools.hosts.local import LocalHost

        self.check("env.init", "--env", env)
        update(LocalHost(), str(self.file(f"config/{env}.env")), values)
        self.check("env.validate", "--env", env)

    def check(self, *args: str) -> Run:
        """``invoke ARGS`` that must succeed."""
        run = self.invoke(*args, timeout=DEPLOY_TIMEOUT)
        if run.returncode != 0:
            raise AssertionError(f"invoke {' '.join(args)} exited {run.returncode}:\n{run.output}")
        return run

    # -- git ----------------------------------------------------------------------------------

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.path, capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def commit(self, message: str, files: Mapping[str, str | None] | None = None) -> str:
        """Write (or delete, for None) ``files`` and commit everything; returns the sha."""
        for name, text in (files or {}).items():
            target = self.file(name)
            if text is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def release_tags(self) -> list[str]:
        return self.git("tag", "--list", "release-*").split()

    # -- the CLI ------------------------------------------------------------------------------

    def deploy(self, env: str, *args: str) -> Run:
        return self.invoke("deploy", "--env", env, *args, timeout=DEPLOY_TIMEOUT)

    def rollback(self, env: str, tag: str, *args: str) -> Run:
        return self.invoke("rollback", "--env", env, "--tag", tag, *args, timeout=DEPLOY_TIMEOUT)

    # -- what the deploy left behind ------------------------------------------------------------

    def state_dir(self, env: str) -> Path:
        return self.file(f".deploytools/{env}")

    def journal(self, env: str) -> list[dict[str, Any]]:
        path = self.state_dir(env) / "journal.jsonl"
        if not path.exists():
            return []
        # While a deploy runs its last line may be half written: only whole lines count.
        lines = path.read_text().split("\n")[:-1]
        return [json.loads(line) for line in lines if line.strip()]

    def releases(self, env: str) -> list[dict[str, Any]]:
        return [r for r in self.journal(env) if r["kind"] == "release"]

    def env_values(self, env: str) -> dict[str, str]:
        from deploytools.env.file import load_values

        return load_values(self.file(f"config/{env}.env"))

    def database_url(self, env: str) -> str:
        """DATABASE_URL of ``env``; a relative SQLite path is relative to example/ (app_dir)."""
        url = self.env_values(env)["DATABASE_URL"]
        location = url.removeprefix("sqlite:///")
        if location != url and not location.startswith("/"):
            return f"sqlite:///{self.file('example') / location}"
        return url

    def database(self, env: str) -> tuple[str | None, dict[str, int]]:
        return database_state(self.database_url(env))


def remove_images(name: str) -> None:
    """Untag every tag of the image ``name`` on the engine (a compose module's teardown)."""
    done = subprocess.run(
        ["docker", "images", name, "--format", "{{.Tag}}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    for tag in done.stdout.split():
        subprocess.run(
            ["docker", "image", "rm", "-f", f"{name}:{tag}"],
            capture_output=True, timeout=300, check=False,
        )  # fmt: skip


def stop_process(proc: subprocess.Popen[str], timeout: float = 60.0) -> tuple[str, str]:
    """Wait for a background CLI run (killing it after ``timeout``); returns its output."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        return proc.communicate(timeout=30)


def _tracked(directory: Path) -> Sequence[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=directory, capture_output=True, check=True, timeout=60
    ).stdout
    return [name for name in out.decode().split("\0") if name]


def _link_tree(source: Path, target: Path) -> None:
    """Hard links where possible (same file system, no copy), else copies."""
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file():
            try:
                os.link(item, target / item.name)
            except OSError:
                shutil.copy2(item, target / item.name)


# -- looking at the world -----------------------------------------------------------------------


def health(port: int | str) -> tuple[int, dict[str, Any]]:
    """GET /health of the backend on loopback: (status, JSON body); (0, {}) if nothing answers."""
    import httpx

    try:
        response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5.0)
    except httpx.HTTPError:
        return 0, {}
    try:
        body = response.json()
    except ValueError:
        body = {}
    return response.status_code, body if isinstance(body, dict) else {}


def database_state(url: str) -> tuple[str | None, dict[str, int]]:
    """The alembic revision and the row count of every table: a database's observable state."""
    from sqlalchemy import create_engine, inspect, text

    scheme, _, rest = url.partition("://")
    if scheme in ("postgres", "postgresql"):
        url = f"postgresql+psycopg://{rest}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
            counts = {
                t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one())
                for t in tables
            }
            revision = None
            if "alembic_version" in tables:
                revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    return revision, counts


def dies_after_healthy(web: str, seconds: float) -> str:
    """The example's web.py (text ``web``) made to exit 1 ``seconds`` after its first healthy
    answer: a release that passes its health checks, then crashes."""
    anchor = "    return JSONResponse(body, status_code=200 if healthy else 503)\n"
    top = 'log = logging.getLogger("exampleapp")\n'
    assert web.count(anchor) == 1 and web.count(top) == 1
    dying = (
        f"    if healthy and not _DYING:  # test: exit {seconds:g} s after the first healthy one\n"
        f"        _DYING.append(threading.Timer({seconds}, os._exit, (1,)))\n"
        "        _DYING[0].start()\n"
    )
    state = "import os\nimport threading\n\n_DYING: list[threading.Timer] = []\n"
    return web.replace(top, top + state).replace(anchor, dying + anchor)


def assert_undone_after_dying(
    project: DeployProject, env: str, run: Run, previous: str, change: str
) -> None:
    """A deploy of ``dies_after_healthy``: failed at the health wait, which says how the backend
    failed once healthy (``change``, a regex), the release journaled as failed and ``previous``
    verified healthy again by the undo."""
    assert run.returncode == 1, run.output
    assert "failed at step 'wait healthy'" in run.stderr
    said = rf"backend was healthy at \d+\.\ds, then failed \d+\.\ds later: {change}\n"
    assert re.search(said, run.stderr), run.stderr
    assert "last 20 log lines of backend:" in run.stderr
    assert f"release {previous} verified healthy again" in run.stderr
    failed = project.releases(env)[-1]
    assert (failed["result"], failed["failed_step"]) == ("failed", "wait healthy")


def migration(revision: str, upgrade: str, downgrade: str = "pass", down: str = "0003") -> str:
    """The text of an alembic revision module on top of ``down``."""
    return (
        f'"""Test revision {revision}."""\n\n'
        "import sqlalchemy as sa\n"
        "from alembic import op\n\n"
        f'revision = "{revision}"\n'
        f'down_revision = "{down}"\n'
        "branch_labels = None\n"
        "depends_on = None\n\n\n"
        "def upgrade() -> None:\n"
        + "".join(f"    {line}\n" for line in upgrade.splitlines())
        + "\n\ndef downgrade() -> None:\n"
        + "".join(f"    {line}\n" for line in downgrade.splitlines())
    )
