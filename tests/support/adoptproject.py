"""The trial's project for the process runtime, as it arrives before deploytools.

Code at the root (``shop/``: an HTTP backend on the standard library's server, a Celery app),
``alembic.ini`` and an async ``alembic/env.py`` at the root reading ``DATABASE_URL`` from the
environment with a SQLite default, a ``.env.example``, its own ``.venv`` with the older Celery
its requirements pin, all committed in git; no ``tasks.py`` nor ``config/``: ``invoke init``'s
input. The virtualenv is made with pip from the package index, as the app's team makes it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.cli import TempProject
from tests.support.rootproject import root_project

CELERY = "5.3.6"
# The trial's pins: celery 5.3 with the kombu and redis-py of its time (kombu 5.7 would need
# redis-py >= 6.1: the crash the trial met when deploytools was installed into the app's venv).
REQUIREMENTS = f"""\
celery=={CELERY}
kombu==5.3.7
redis==5.0.8
alembic
sqlalchemy[asyncio]
asyncpg
"""
WEB = """\
\"\"\"The shop's HTTP backend.\"\"\"

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/health":
            self.send_error(404)
            return
        body = json.dumps({"status": "healthy", "release": os.environ.get("RELEASE_ID")})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""
WORKER = """\
\"\"\"The shop's Celery app: ``celery -A shop.worker worker``.\"\"\"

import os

from celery import Celery

app = Celery(
    "shop",
    broker=os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0"),
    backend=os.environ.get("CELERY_RESULT_BACKEND", "redis://localhost:6379/1"),
)


@app.task(name="shop.add")
def add(x, y):
    return x + y
"""
# alembic's async template, as the trial's app had it: the URL from the environment only.
ENV_PY = """\
import asyncio
import os

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

url = os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///shop.db")


def run_migrations(connection):
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_online():
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_online())
"""
ALEMBIC_INI = """\
[alembic]
script_location = alembic
"""
ENV_EXAMPLE = """\
DATABASE_URL=postgresql+asyncpg://shop:shop@localhost:5432/shop?ssl=disable
CELERY_BROKER_URL=redis://localhost:6379/0
CELERY_RESULT_BACKEND=redis://localhost:6379/1
SECRET_KEY=dev-secret
PORT=8000
"""
GITIGNORE = ".venv/\n__pycache__/\n.env\n*.db\n"
ADD_COLUMN = '''\
"""items get a name"""

from alembic import op
import sqlalchemy as sa

revision = "a2"
down_revision = "a1"


def upgrade():
    op.add_column("items", sa.Column("name", sa.Text, nullable=True))


def downgrade():
    op.drop_column("items", "name")
'''


def adopt_project(path: Path) -> TempProject:
    """The project in ``path``, committed, with its ``.venv``; revision ``a1`` only."""
    project = root_project(path)
    shutil.rmtree(path / "config")
    (path / "tasks.py").unlink()
    (path / "shop/__main__.py").unlink()
    for name, text in {
        "shop/web.py": WEB,
        "shop/worker.py": WORKER,
        "alembic.ini": ALEMBIC_INI,
        "alembic/env.py": ENV_PY,
        "requirements.txt": REQUIREMENTS,
        ".env.example": ENV_EXAMPLE,
        ".gitignore": GITIGNORE,
    }.items():
        (path / name).write_text(text)
    make_venv(path)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    commit(path, "the shop as cloned")
    return project


def make_venv(path: Path) -> None:
    """``.venv`` with the requirements, from the package index (pip's cache makes reruns fast)."""
    subprocess.run([sys.executable, "-m", "venv", str(path / ".venv")], check=True, timeout=120)
    pip = [str(path / ".venv/bin/python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", str(path / "requirements.txt")], check=True, timeout=600)


def git(path: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=path, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def commit(path: Path, message: str) -> None:
    git(path, "add", "-A")
    git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)


def freeze(path: Path) -> str:
    """The app's installed packages, as its own pip sees them."""
    done = subprocess.run(
        [str(path / ".venv/bin/python"), "-m", "pip", "freeze", "--all"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout
