"""Revision files are read, not run: their imports are the app's, which deploytools (installed
beside the app) does not have."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploytools.db.revisions import all_revisions, irreversible_between
from deploytools.errors import OperatorError
from deploytools.testing import settings_for

# As alembic's current template writes them, with the app's own imports at the top.
FIRST = '''"""create items

Revision ID: a1
"""
from typing import Sequence, Union

import sqlmodel
from alembic import op
from shop.models import Item

revision: str = "a1"
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
reviewed = {"adding-field-with-default": "a new table: nobody reads it yet"}


def upgrade() -> None:
    op.create_table("items", sqlmodel.Column("id", sqlmodel.Integer, primary_key=True))
'''
SECOND = '''"""drop the legacy column"""
import shop.settings

revision = "b2"
down_revision = "a1"
irreversible = "the column's data is gone"
'''


def project(tmp_path: Path, **files: str) -> Path:
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/alembic\n")
    versions = tmp_path / "alembic" / "versions"
    versions.mkdir(parents=True)
    (tmp_path / "alembic" / "env.py").write_text("raise RuntimeError('never run')\n")
    for name, text in files.items():
        (versions / f"{name}.py").write_text(text)
    (versions / "__init__.py").write_text("")
    return tmp_path


def test_revisions_that_import_the_apps_packages_are_read_without_them(tmp_path: Path) -> None:
    settings = settings_for(project(tmp_path, a1_items=FIRST, b2_drop=SECOND))

    revisions = all_revisions(settings)

    assert [(r.id, r.down, r.message) for r in revisions] == [
        ("b2", ("a1",), "drop the legacy column"),
        ("a1", (), "create items"),
    ]
    assert revisions[1].reviewed == {
        "adding-field-with-default": "a new table: nobody reads it yet"
    }
    assert [r.id for r in irreversible_between(settings, "b2", "a1")] == ["b2"]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('revision = "c3"\ndown_revision = compute()\n', "down_revision is not a literal"),
        ('revision = "c3"\ndown_revision = (\n', "not valid Python"),
    ],
)
def test_a_revision_file_that_cannot_be_read_names_its_line(
    tmp_path: Path, text: str, said: str
) -> None:
    settings = settings_for(project(tmp_path, a1_items=FIRST, c3_bad=text))

    with pytest.raises(OperatorError) as caught:
        all_revisions(settings)

    assert "c3_bad.py:" in caught.value.problem and said in caught.value.problem
