"""A project that is not the example, laid out as real ones are: its code and ``alembic.ini``
at the root, ``alembic/env.py`` reading ``DATABASE_URL`` from the environment, a
``config/deploy.toml`` that names only what it must, and no ``config/env.rules.toml``: what it
gets is what deploytools gives every project."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deploytools.gitignore import IGNORE_FILE
from deploytools.site.journal import JOURNAL_FILE
from tests.support.cli import Run, TempProject
from tests.support.deployproject import DEPLOY_TIMEOUT, health

ENV = "prod"
# What a refused run leaves in the state directory: the journal saying so, and the directory's
# mark for git (deploytools.gitignore).
JOURNAL_FILES = (JOURNAL_FILE, IGNORE_FILE)
DEPLOY_TOML = f"""\
[project]
name = "shop"

[environments.{ENV}]
env_file = "config/{ENV}.env"
env_example = "config/{ENV}.env.example"
runtime = "process"

[environments.{ENV}.services.web]
command = ["{{python}}", "-m", "shop"]

[environments.staging]
env_file = "config/staging.env"
env_example = "config/{ENV}.env.example"
runtime = "process"
"""
EXAMPLE = "SHOP_API_TOKEN=<token>\nDATABASE_URL=sqlite:///var/shop.sqlite3\n"
ALEMBIC_INI = """\
[alembic]
script_location = %(here)s/alembic
"""
ENV_PY = '''\
import os

from alembic import context
from sqlalchemy import create_engine

url = os.environ.get("DATABASE_URL", "sqlite:///shop.db")
if context.is_offline_mode():  # `alembic upgrade --sql`, as alembic's own template has it
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    with create_engine(url).connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
'''
REVISION = '''\
"""create items"""

from alembic import op
import sqlalchemy as sa

revision = "a1"
down_revision = None


def upgrade():
    op.create_table("items", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("items")
'''

# ``python -m shop`` for tests that deploy it: /health answers with the release and FIELDS.
SERVICE = """\
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
IMPORTS


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "healthy", "release": os.environ["RELEASE_ID"], FIELDS})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def shop_service(imports: str, fields: str) -> str:
    """The ``shop/__main__.py`` of an HTTP service on ``$PORT`` whose /health answer holds the
    release id and ``fields`` (a dict display's items, using what ``imports`` imports)."""
    return SERVICE.replace("IMPORTS", imports).replace("FIELDS", fields)


def root_project(path: Path) -> TempProject:
    """The project in ``path``: ``shop/`` and ``alembic/`` at the root, one revision ``a1``."""
    path.mkdir(parents=True, exist_ok=True)
    project = TempProject(path, example=False)
    files = {
        "config/deploy.toml": DEPLOY_TOML,
        f"config/{ENV}.env.example": EXAMPLE,
        "shop/__init__.py": "",
        "shop/__main__.py": "print('shop')\n",
        "alembic.ini": ALEMBIC_INI,
        "alembic/env.py": ENV_PY,
        "alembic/versions/a1_create_items.py": REVISION,
    }
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return project


class RootSite:
    """The project deployed by the real CLI (with ``env`` over the test's environment): its
    git, the releases its journal records and stores, what its service on ``port`` answers."""

    def __init__(self, project: TempProject, port: str, env: Mapping[str, str] = {}) -> None:
        self.project = project
        self.port = port
        self.env = dict(env)
        self.version = 0

    def run(self, *args: str) -> Run:
        return self.project.invoke(*args, env=self.env, timeout=DEPLOY_TIMEOUT)

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.project.path, capture_output=True, text=True, check=True
        )
        return done.stdout

    def releases(self) -> list[dict[str, Any]]:
        journal = self.project.file(f".deploytools/{ENV}/journal.jsonl").read_text()
        lines = [json.loads(line) for line in journal.splitlines()]
        return [r for r in lines if r["kind"] == "release"]

    @property
    def releases_dir(self) -> Path:
        return self.project.file(f".deploytools/{ENV}/releases")

    def stored(self) -> list[str]:
        return sorted(p.name for p in self.releases_dir.iterdir())

    def serves(self) -> dict[str, Any]:
        code, body = health(self.port)
        assert code == 200, body
        return body
