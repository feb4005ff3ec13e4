"""An environment for database tests: settings on a temp root, migrations copied when a test adds
revisions of its own, a Ui whose output can be read back, and row snapshots for comparisons."""

from __future__ import annotations

import io
import shutil
import textwrap
from pathlib import Path
from typing import Any

from rich.console import Console

from deploytools.config import DatabaseSettings, EnvironmentSettings
from deploytools.ui import Ui

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example"


def make_settings(
    root: Path, url: str, *, app_dir: Path | None = None, name: str = "test", **database: Any
) -> EnvironmentSettings:
    """Settings whose env file (in ``root``) holds ``url``; backups and journal go in ``root``;
    ``app_dir`` defaults to a copy of the example's migrations in ``root``."""
    (root / f"{name}.env").write_text(f"DATABASE_URL={url}\n")
    app_dir = app_dir or example_app(root)
    return EnvironmentSettings(
        name=name,
        env_file=f"{name}.env",
        env_example=f"{name}.env.example",
        runtime="process",
        app_dir=str(app_dir),
        root=root,
        # the example's layout: alembic.ini and migrations/ in app_dir; alembic runs there
        database=DatabaseSettings(
            **{"min_free_mb": 0, "alembic_ini": str(Path(app_dir) / "alembic.ini"), **database}
        ),
    )


class CapturedUi(Ui):
    """A Ui writing to strings, wide enough that no message is wrapped."""

    def __init__(self) -> None:
        self.err_text = io.StringIO()
        self.out_text = io.StringIO()
        super().__init__(
            err=Console(file=self.err_text, width=500, highlight=False),
            out=Console(file=self.out_text, width=500, highlight=False),
        )

    @property
    def text(self) -> str:
        return self.err_text.getvalue() + self.out_text.getvalue()


def example_app(tmp_path: Path) -> Path:
    """A copy of the example's alembic.ini and migrations in ``tmp_path/app``; returns it."""
    app = tmp_path / "app"
    if not app.exists():
        shutil.copytree(
            EXAMPLE / "migrations", app / "migrations", ignore=shutil.ignore_patterns("__pycache__")
        )
        shutil.copy2(EXAMPLE / "alembic.ini", app / "alembic.ini")
    return app


def app_with_revision(tmp_path: Path, body: str, revision: str = "0004") -> Path:
    """A copy of the example's migrations plus one revision on top of 0003; returns app_dir."""
    app = example_app(tmp_path)
    head = textwrap.dedent(
        f'''\
        """Test revision {revision}."""

        import sqlalchemy as sa
        from alembic import op

        revision = "{revision}"
        down_revision = "0003"
        branch_labels = None
        depends_on = None
        '''
    )
    (app / "migrations" / "versions" / f"{revision}_test.py").write_text(
        head + "\n" + textwrap.dedent(body)
    )
    return app
