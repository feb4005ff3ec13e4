"""A project laid out like the trial's (tests/support/rootproject.py) whose releases each get
a virtualenv (``releases.venv``): its service, ``{python} -m shop``, answers with the version
of ``shopdep``, a package written as wheels 1 and 2 into a local directory. The requirements
file names it and the example's wheelhouse (alembic, SQLAlchemy) with ``--no-index
--find-links``: no index, no network. Its ``env.py`` writes down which interpreter ran the
migration. Used by tests/integration/deploy/test_deploy_release_venv.py and
bench/release_venv.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from tests.support import parts
from tests.support.cli import ROOT, TempProject
from tests.support.procs import free_port
from tests.support.require import require
from tests.support.rootproject import ENV, ENV_PY, RootSite, root_project, shop_service
from tests.support.wheels import make_wheel

TOKEN = "shop-token-0c5e8d7a6b4f3e2d1c0b9a88"
SERVICE = shop_service(
    "import sys\nfrom importlib.metadata import version\n\nimport shopdep",
    '"shopdep": shopdep.VALUE, "dist": version("shopdep"), "prefix": sys.prefix',
)
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


class Shop(RootSite):
    """``path``: the PATH its CLI runs with (uv on it or not); ``wheelhouse``: shopdep's."""

    def __init__(self, project: TempProject, port: str, wheelhouse: Path, path: str) -> None:
        super().__init__(project, port, {"PATH": path})
        self.wheelhouse = wheelhouse
        self.path = path

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

    @property
    def venvs_dir(self) -> Path:
        return self.project.file(f".deploytools/{ENV}/venvs")

    def venvs(self) -> list[str]:
        return sorted(p.name for p in self.venvs_dir.iterdir())

    def venv_of(self, tag: str) -> Path:
        link = self.releases_dir / tag / ".venv"
        assert link.is_symlink(), f"{tag} has no .venv link"
        return link.resolve()


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
