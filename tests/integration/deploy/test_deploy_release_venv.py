"""Each process release runs on its own virtualenv (``releases.venv``), made from its
requirements file by uv, or by ``python -m venv`` + pip when uv is not on PATH.

The project is laid out like the trial's (tests/support/rootproject.py); its service is
``{python} -m shop`` (no ``python`` configured: the release's ``.venv``) and answers with the
version of ``shopdep``, a package the test writes as wheels 1 and 2 into a local directory.
The requirements file names it and the example's wheelhouse (alembic, SQLAlchemy) with
``--no-index --find-links``: no index, no network. The migrations run in the release's
virtualenv too; its ``env.py`` writes down which one. Each test makes its own project.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import parts
from tests.support.blackhole import black_hole
from tests.support.cli import ROOT, Run, TempProject
from tests.support.deployproject import DEPLOY_TIMEOUT, health
from tests.support.procs import free_port
from tests.support.require import require
from tests.support.rootproject import ENV, ENV_PY, root_project
from tests.support.wheels import make_wheel

pytestmark = pytest.mark.integration

TOKEN = "shop-token-0c5e8d7a6b4f3e2d1c0b9a88"
SERVICE = """\
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib.metadata import version

import shopdep


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "healthy", "release": os.environ["RELEASE_ID"],
                           "shopdep": shopdep.VALUE, "dist": version("shopdep"),
                           "prefix": sys.prefix}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""
MORE_CONFIG = f"""
[environments.{ENV}.releases]
keep = {{keep}}
venv = "requirements.txt"

[environments.{ENV}.services.web.probe]
url = "http://127.0.0.1:{{{{PORT}}}}/health"
min_healthy = 0
timeout = 20

[environments.{ENV}.timeouts]
stop = 5
venv = {{venv_timeout}}
"""
INSTALLERS = ["uv", "pip"]
EXAMPLE_WHEELS = ROOT / "example" / "wheelhouse"  # alembic, SQLAlchemy and what they need
# Which interpreter ran the migration: written into the shared var/ by the app's env.py.
MIGRATED_WITH = "import sys\nopen('var/migrated-with', 'w').write(sys.prefix)\n"


def uv_dir() -> Path:
    """Where uv is: on PATH, or beside this interpreter (the test extra installs it there)."""
    found = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    require(found is not None, "uv", "pip install uv (it is in the test extra)")
    assert found is not None
    return Path(found).parent


def path_for(installer: str) -> str:
    """PATH without any uv, with uv's directory first when the installer is uv."""
    uv = uv_dir()
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not (Path(d) / "uv").exists()]  # fmt: skip
    return os.pathsep.join([str(uv), *dirs] if installer == "uv" else dirs)


class Shop:
    def __init__(self, project: TempProject, port: str, wheelhouse: Path, path: str) -> None:
        self.project = project
        self.port = port
        self.wheelhouse = wheelhouse
        self.path = path
        self.version = 0

    def run(self, *args: str) -> Run:
        return self.project.invoke(*args, env={"PATH": self.path}, timeout=DEPLOY_TIMEOUT)

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.project.path, capture_output=True, text=True, check=True
        )
        return done.stdout

    def commit(self, requirement: str, extra: str = "") -> None:
        """The next version of the code, requiring ``requirement``."""
        self.version += 1
        self.project.file("shop/version.py").write_text(f"VERSION = {self.version}\n")
        self.project.file("requirements.txt").write_text(
            f"--no-index\n--find-links {self.wheelhouse}\n--find-links {EXAMPLE_WHEELS}\n"
            f"alembic\nsqlalchemy\n{requirement}\n{extra}"
        )
        self.git("add", "-A")
        self.git("commit", "-qm", f"version {self.version}: {requirement}")

    def deploy(self, requirement: str, extra: str = "") -> str:
        """Commit and deploy; returns the new release's tag."""
        self.commit(requirement, extra)
        run = self.run("deploy", "--env", ENV)
        assert run.returncode == 0, run.output
        return str(self.releases()[-1]["tag"])

    def releases(self) -> list[dict[str, Any]]:
        journal = self.project.file(f".deploytools/{ENV}/journal.jsonl").read_text()
        lines = [json.loads(line) for line in journal.splitlines()]
        return [r for r in lines if r["kind"] == "release"]

    @property
    def venvs_dir(self) -> Path:
        return self.project.file(f".deploytools/{ENV}/venvs")

    def venvs(self) -> list[str]:
        return sorted(p.name for p in self.venvs_dir.iterdir())

    def stored(self) -> list[str]:
        return sorted(p.name for p in self.project.file(f".deploytools/{ENV}/releases").iterdir())

    def venv_of(self, tag: str) -> Path:
        link = self.project.file(f".deploytools/{ENV}/releases/{tag}/.venv")
        assert link.is_symlink(), f"{tag} has no .venv link"
        return link.resolve()

    def serves(self) -> dict[str, Any]:
        code, body = health(self.port)
        assert code == 200, body
        return body


def identity(venv: Path) -> tuple[int, int, int]:
    """What changes if the virtualenv is made again: its inode, its marker's inode and mtime."""
    done = venv / ".deploytools-done"
    return venv.stat().st_ino, done.stat().st_ino, done.stat().st_mtime_ns


def made_by(venv: Path) -> str:
    return str(json.loads((venv / ".deploytools-done").read_text())["installer"])


def make_shop(path: Path, installer: str, keep: int, venv_timeout: float) -> Shop:
    require(EXAMPLE_WHEELS.is_dir(), "the example's wheelhouse", parts.PROVISION)
    project = root_project(path)
    with project.file("config/deploy.toml").open("a") as toml:
        toml.write(MORE_CONFIG.format(keep=keep, venv_timeout=venv_timeout))
    files = {
        "shop/__main__.py": SERVICE,
        "alembic/env.py": MIGRATED_WITH + ENV_PY,
        ".gitignore": "config/*.env\n.deploytools/\nbackups/\nvar/\n__pycache__/\n*.db\n",
        f"config/{ENV}.env.example": "SHOP_API_TOKEN=<token>\n"
        "DATABASE_URL=sqlite:///var/shop.sqlite3\nPORT=8000\n",
    }
    for name, body in files.items():
        project.file(name).write_text(body)
    port = str(free_port())
    project.write_env(
        ENV, f"SHOP_API_TOKEN={TOKEN}\nDATABASE_URL=sqlite:///var/shop.sqlite3\nPORT={port}\n"
    )
    project.file("var").mkdir()
    wheelhouse = path.parent / "wheelhouse"
    for version in ("1", "2"):
        make_wheel(wheelhouse, "shopdep", version, {"shopdep/__init__.py": f"VALUE = {version}\n"})
    shop = Shop(project, port, wheelhouse, path_for(installer))
    shop.git("init", "-q")
    shop.git("config", "user.name", "t")
    shop.git("config", "user.email", "t@t")
    return shop


Make = Callable[..., Shop]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    """``make(installer, keep=5, venv_timeout=600)``: a shop, its services stopped after."""
    made: list[Shop] = []

    def one(installer: str, keep: int = 5, venv_timeout: float = 600) -> Shop:
        made.append(make_shop(tmp_path / f"shop{len(made)}", installer, keep, venv_timeout))
        return made[-1]

    try:
        yield one
    finally:
        for site in made:
            site.run("stack.down", "--env", ENV)


@pytest.fixture(params=INSTALLERS)
def shop(request: pytest.FixtureRequest, make: Make) -> Shop:
    return make(request.param)


def test_each_release_runs_on_its_packages_and_a_rollback_reuses_its_virtualenv(
    shop: Shop, request: pytest.FixtureRequest
) -> None:
    installer = request.node.callspec.params["shop"]
    first = shop.deploy("shopdep==1")
    body = shop.serves()
    assert (body["release"], body["shopdep"], body["dist"]) == (first, 1, "1")
    venv = shop.venv_of(first)
    assert Path(body["prefix"]).resolve() == venv  # the service runs on the release's own
    migrated_with = shop.project.file("var/migrated-with").read_text()
    assert Path(migrated_with).resolve() == venv  # and so does its migration
    assert made_by(venv) == installer
    before = identity(venv)

    again = shop.deploy("shopdep==1")  # other code, the same requirements
    assert shop.venv_of(again) == venv and identity(venv) == before  # reused, not made again
    assert shop.venvs() == [venv.name]

    second = shop.deploy("shopdep==2")
    body = shop.serves()
    assert (body["release"], body["shopdep"], body["dist"]) == (second, 2, "2")
    assert shop.venv_of(second) != venv
    assert sorted(shop.venvs()) == sorted([venv.name, shop.venv_of(second).name])

    back = shop.run("rollback", "--env", ENV, "--tag", first)
    assert back.returncode == 0, back.output
    body = shop.serves()
    assert (body["release"], body["shopdep"], body["dist"]) == (first, 1, "1")
    assert Path(body["prefix"]).resolve() == venv
    assert identity(venv) == before  # old code on its old packages, nothing rebuilt
    assert sorted(shop.venvs()) == sorted([venv.name, shop.venv_of(second).name])


def test_a_requirement_that_cannot_be_installed_fails_the_build_and_keeps_the_old_release(
    shop: Shop, request: pytest.FixtureRequest
) -> None:
    installer = request.node.callspec.params["shop"]
    first = shop.deploy("shopdep==1")
    venvs = shop.venvs()

    shop.commit("shopdep==3")
    run = shop.run("deploy", "--env", ENV)

    assert run.returncode == 1, run.output
    said = {"uv": "unsatisfiable", "pip": "No matching distribution found for shopdep==3"}
    assert "cannot make the virtualenv of release" in run.output
    assert said[installer] in run.output, run.output  # the installer's own last lines
    assert "build" in shop.releases()[-1]["failed_step"]
    assert TOKEN not in run.output
    body = shop.serves()
    assert (body["release"], body["shopdep"]) == (first, 1)
    assert shop.venvs() == venvs  # the half-made virtualenv is gone


def test_retention_removes_a_virtualenv_only_when_no_kept_release_uses_it(make: Make) -> None:
    shop = make("uv", keep=2)  # the installer plays no part in retention
    one = shop.deploy("shopdep==1")
    two = shop.deploy("shopdep==2")
    venv_one, venv_two = shop.venv_of(one), shop.venv_of(two)
    three = shop.deploy("shopdep==1", extra="# another file, another virtualenv\n")
    venv_three = shop.venv_of(three)
    assert venv_three != venv_one

    assert shop.stored() == sorted([two, three])
    assert shop.venvs() == sorted([venv_two.name, venv_three.name])  # one's went with it
    before = identity(venv_two)

    four = shop.deploy("shopdep==2")  # two's requirements again: two is pruned, its venv kept
    assert shop.stored() == sorted([three, four])
    assert shop.venv_of(four) == venv_two and identity(venv_two) == before
    assert shop.venvs() == sorted([venv_two.name, venv_three.name])
    assert shop.serves()["shopdep"] == 2


def test_a_release_without_the_requirements_file_is_refused_naming_the_key(make: Make) -> None:
    shop = make("uv")
    shop.commit("shopdep==1")
    shop.git("rm", "-q", "requirements.txt")
    shop.git("commit", "-qm", "no requirements")

    run = shop.run("deploy", "--env", ENV)

    assert run.returncode == 2, run.output
    assert "has no file requirements.txt" in run.output
    assert f"environments.{ENV}.releases.venv" in run.output
    assert not shop.venvs_dir.exists()
    releases = shop.project.file(f".deploytools/{ENV}/releases")
    assert not releases.exists() or not any(releases.iterdir())


def hung_requirement(shop: Shop, port: int) -> None:
    """A commit whose install waits forever: its only package source never answers."""
    shop.version += 1
    shop.project.file("requirements.txt").write_text(
        f"--no-index\n--find-links http://127.0.0.1:{port}/\nshopdep==1\n"
    )
    shop.git("add", "-A")
    shop.git("commit", "-qm", "a package source that hangs")


def no_venv_left(shop: Shop) -> None:
    """No virtualenv, half-made or whole, and no release that a start could use."""
    assert not shop.venvs_dir.exists() or shop.venvs() == []
    releases = shop.project.file(f".deploytools/{ENV}/releases")
    assert not list(releases.glob("*/.deploytools-release"))


def test_an_install_that_hangs_is_stopped_by_the_venv_timeout(make: Make) -> None:
    shop = make("pip", venv_timeout=3)
    with black_hole() as hole:
        hung_requirement(shop, hole.port)
        started = time.monotonic()
        run = shop.run("deploy", "--env", ENV)
        took = time.monotonic() - started

    assert run.returncode == 1, run.output
    assert "timed out" in run.output and "raise timeouts.venv" in run.output
    assert took < 60, "pip's own retries (5 x 15 s) were not waited out"
    no_venv_left(shop)


def test_a_signal_during_the_install_stops_it_and_leaves_no_half_virtualenv(make: Make) -> None:
    shop = make("uv")
    with black_hole() as hole:
        hung_requirement(shop, hole.port)
        proc = subprocess.Popen(
            [sys.executable, "-m", "invoke", "deploy", "--env", ENV],
            cwd=shop.project.path,
            env=shop.project.environ({"PATH": shop.path}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while not list(shop.project.path.glob(f".deploytools/{ENV}/venvs/*/pyvenv.cfg")):
                assert proc.poll() is None and time.monotonic() < deadline, "no install began"
                time.sleep(0.05)
            time.sleep(0.5)  # uv pip install is waiting on the package source now
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    assert proc.returncode == 130, out + err
    assert "interrupted at build" in err and "Traceback" not in err
    no_venv_left(shop)
    assert running_with(str(shop.venvs_dir)) == [], "the installer outlived the deploy"


def running_with(text: str) -> list[str]:
    """Command lines of this machine's processes that mention ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode(errors="replace").replace("\0", " ")
        except OSError:  # gone meanwhile
            continue
        if text in argv:
            found.append(argv)
    return found
