"""``alembic`` argv builders: the migration commands a release's runtime runs.

The app's own alembic, run by the app's interpreter (``python -m alembic``) or as the image's
``alembic`` program, reads the app's ``alembic.ini`` and ``env.py``: deploytools never imports
them.
"""

from __future__ import annotations

from collections.abc import Sequence

Argv = list[str]


def program(args: Sequence[str], *, python: str | None = None) -> Argv:
    """``python -m alembic ARGS`` on an interpreter, else the ``alembic`` program on PATH."""
    return [*([python, "-m"] if python else []), "alembic", *args]


def upgrade(ini: str, target: str, *, sql: bool = False) -> Argv:
    """``target``: a revision, ``head``, or ``FROM:TO`` with ``sql`` (offline SQL on stdout)."""
    return ["-c", ini, "upgrade", target, *(["--sql"] if sql else [])]


def downgrade(ini: str, target: str) -> Argv:
    return ["-c", ini, "downgrade", target]


def check(ini: str) -> Argv:
    """``alembic check``: does the models' metadata (env.py's ``target_metadata``) need a new
    migration against the database? Exit 0: no."""
    return ["-c", ini, "check"]
