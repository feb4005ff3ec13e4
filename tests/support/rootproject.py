"""A project that is not the example, laid out as real ones are: its code and ``alembic.ini``
at the root, ``alembic/env.py`` reading ``DATABASE_URL`` from the environment, a
``config/deploy.toml`` that names only what it must, and no ``config/env.rules.toml``: what it
gets is what deploytools gives every project."""

from __future__ import annotations

from pathlib import Path

from deploytools.gitignore import IGNORE_FILE
from deploytools.journal import JOURNAL_FILE
from tests.support.cli import TempProject

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
