"""Split users.name into first_name and last_name, moving the data.

Revision ID: 0003
Revises: 0002

"Ada Lovelace" becomes ("Ada", "Lovelace"), "Cher" becomes ("Cher", ""); the downgrade joins
them again with one space, so a round trip gives back the same names.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

reviewed = {
    "drop-column": "users.name is copied into first_name/last_name in the same transaction "
    "and the app reads only the new columns from this release on",
}


def _space(column: str) -> str:
    """Position of the first space: ``strpos`` in PostgreSQL, ``instr`` in SQLite."""
    function = "instr" if op.get_context().dialect.name == "sqlite" else "strpos"
    return f"{function}({column}, ' ')"


def upgrade() -> None:
    op.add_column("users", sa.Column("first_name", sa.Text, nullable=False, server_default=""))
    op.add_column("users", sa.Column("last_name", sa.Text, nullable=False, server_default=""))
    pos = _space("name")
    op.execute(
        "UPDATE users SET "
        f"first_name = CASE WHEN {pos} > 0 THEN substr(name, 1, {pos} - 1) ELSE name END, "
        f"last_name = CASE WHEN {pos} > 0 THEN substr(name, {pos} + 1) ELSE '' END"
    )
    op.drop_column("users", "name")  # SQLite >= 3.35 drops a column in place


def downgrade() -> None:
    op.add_column("users", sa.Column("name", sa.Text, nullable=False, server_default=""))
    op.execute(
        "UPDATE users SET name = first_name "
        "|| CASE WHEN last_name <> '' THEN ' ' || last_name ELSE '' END"
    )
    op.drop_column("users", "last_name")
    op.drop_column("users", "first_name")
