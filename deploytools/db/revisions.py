"""The migration scripts (alembic's ScriptDirectory) and what deploytools reads from them.

A revision module may declare, at module level:

    irreversible = "why"                   # deploytools refuses to downgrade past it
    reviewed = {"drop-column": "why"}      # lint findings accepted for production, by rule

Revision files are read, never run: their imports are the app's (``sqlmodel``, the app's own
models) and deploytools lives beside the app, not in its environment. So the declarations
alembic's revision map needs (``revision``, ``down_revision``, ``branch_labels``,
``depends_on``) and deploytools' own are taken from the file's syntax tree, as literals; the
migrations themselves run in the release's runtime (``deploytools.db.migrate``).

alembic is imported inside the functions: ``invoke --list`` must not pay for it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from deploytools.config import EnvironmentSettings
from deploytools.db.location import migrations_dir
from deploytools.errors import OperatorError

if TYPE_CHECKING:
    from alembic.script import Script, ScriptDirectory

NAMED_TARGETS = ("head", "heads", "base")
# What a revision file declares that deploytools reads, each a literal.
DECLARED = ("revision", "down_revision", "branch_labels", "depends_on", "irreversible", "reviewed")


@dataclass(frozen=True)
class Revision:
    id: str
    down: tuple[str, ...]
    message: str
    path: str
    irreversible: str | None  # the reason, when the revision cannot be undone
    reviewed: dict[str, str]  # lint rule -> why it is safe


def script_directory(settings: EnvironmentSettings) -> ScriptDirectory:
    """The revisions as deploytools reads them (ids, messages, declarations); migrations
    themselves run in the release's runtime (``deploytools.db.migrate``)."""
    import io

    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionMap

    config = Config(stdout=io.StringIO())
    config.set_main_option("script_location", str(migrations_dir(settings)))
    script = ScriptDirectory.from_config(config)
    # Built lazily on first use: its revisions come from the files' syntax, not from importing
    # them (see the module's docstring).
    locations = [Path(p) for p in config.get_version_locations_list() or [script.versions]]
    script.revision_map = RevisionMap(lambda: _declared(locations))
    return script


def _declared(locations: list[Path]) -> Iterator[Script]:
    from alembic.script import Script

    for location in locations:
        for path in sorted(location.glob("*.py")) if location.is_dir() else []:
            module = read_declarations(path)
            if module is not None:
                yield Script(module, module.revision, path)


def read_declarations(path: Path) -> ModuleType | None:
    """A revision file's declarations as a module object, without running the file; None
    for a file that declares no ``revision`` (``__init__.py``, a helper module)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as exc:
        raise OperatorError(
            f"{path}:{exc.lineno}: not valid Python ({exc.msg})", "fix the revision file"
        ) from None
    module = ModuleType(path.stem, ast.get_docstring(tree))
    module.__file__ = str(path)
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in DECLARED:
                try:
                    setattr(module, target.id, ast.literal_eval(value))
                except ValueError:
                    raise OperatorError(
                        f"{path}:{node.lineno}: {target.id} is not a literal: deploytools reads "
                        "revision files without running them",
                        f"write {target.id} as a plain value (a string, None, a tuple, a dict)",
                    ) from None
    return module if isinstance(getattr(module, "revision", None), str) else None


def describe(script: Script) -> Revision:
    module = script.module
    irreversible = getattr(module, "irreversible", None)
    reviewed = getattr(module, "reviewed", None) or {}
    down = script.down_revision
    downs = () if down is None else (down,) if isinstance(down, str) else tuple(down)
    return Revision(
        id=script.revision,
        down=downs,
        message=(script.doc or "").strip().splitlines()[0] if script.doc else "",
        path=str(script.path),
        irreversible=(irreversible if isinstance(irreversible, str) else "declared irreversible")
        if irreversible
        else None,
        reviewed={str(k): str(v) for k, v in dict(reviewed).items()},
    )


def all_revisions(settings: EnvironmentSettings) -> list[Revision]:
    """Every revision, newest first."""
    return [describe(s) for s in script_directory(settings).walk_revisions()]


def resolve(script: ScriptDirectory, target: str) -> str:
    """A full revision id (prefixes allowed, as alembic does) or head/heads/base; else an error."""
    from alembic.util import CommandError

    if target in NAMED_TARGETS:
        return target
    try:
        found = script.get_revision(target)
    except CommandError as exc:
        found, reason = None, str(exc)
    else:
        reason = ""
    if found is None:
        raise OperatorError(
            f"unknown revision {target!r}" + (f" ({reason})" if reason else ""),
            "list the revisions with `invoke db.history --env NAME`",
        )
    return str(found.revision)


def between(script: ScriptDirectory, upper: str | None, lower: str | None) -> list[Revision]:
    """Revisions above ``lower`` up to and including ``upper``, oldest first."""
    from alembic.script.revision import RangeNotAncestorError

    if upper in (None, "base") or upper == lower:
        return []
    try:
        found = script.iterate_revisions(upper, lower or "base")
        return [describe(s) for s in reversed(list(found))]
    except RangeNotAncestorError:
        raise OperatorError(
            f"revision {lower} is not below {upper}: there is no path between them",
            "pick a revision from `invoke db.history --env NAME` that is an ancestor",
        ) from None


def irreversible_between(
    settings: EnvironmentSettings, from_rev: str | None, to_rev: str | None
) -> list[Revision]:
    """Revisions a downgrade from ``from_rev`` to ``to_rev`` would undo that say they cannot be."""
    script = script_directory(settings)
    upper = resolve(script, from_rev) if from_rev else None
    lower = resolve(script, to_rev) if to_rev else None
    return [r for r in between(script, upper, lower) if r.irreversible]


def is_reversible(settings: EnvironmentSettings, from_rev: str | None, to_rev: str | None) -> bool:
    """True when no revision between ``to_rev`` (excluded) and ``from_rev`` is irreversible."""
    return not irreversible_between(settings, from_rev, to_rev)
