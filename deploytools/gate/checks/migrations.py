"""migrations: one head, then Squawk (``gate.squawk``; PostgreSQL) and our own lint
(``db.lint``: where Squawk has no rule, and alone on SQLite) over every revision's offline SQL,
per environment; risky SQL is an error in production unless the revision marks it reviewed.
No database, no engine.

migration-roundtrip: ``upgrade head`` -> ``downgrade base`` -> ``upgrade head`` on a throwaway
database, run by the app's alembic where deploys run it (``gate.roundtrip``: the app's
interpreter, or the image of the compose environments selected when no process environment
is): a downgrade that does not undo its upgrade fails here, not during a rollback. Then
``alembic check`` there: models (env.py's ``target_metadata``) that the migrations do not
make fail too, when the project declares them.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from deploytools.config import EnvironmentSettings
from deploytools.gate import squawk
from deploytools.gate.project import Project
from deploytools.gate.registry import Item, Status, register
from deploytools.gate.roundtrip import alembic_where

if TYPE_CHECKING:
    from deploytools.db.revisions import Revision


@register("migrations", needs=frozenset({"squawk"}))
def check_migrations(project: Project, env: str | None) -> list[Item]:
    """A single head; Squawk (PostgreSQL) and our lint over every revision's offline SQL."""
    from deploytools.db.lint import lint_sql
    from deploytools.db.location import migrations_dir
    from deploytools.db.migrate import offline_sql
    from deploytools.db.revisions import all_revisions, script_directory
    from deploytools.runtime.migrations import dialect_of, dialect_only

    assert env is not None
    settings = project.settings(env)
    where = alembic_where(settings)
    heads = sorted(script_directory(settings).get_heads())
    if len(heads) > 1:
        return [
            Item(env, "fail", f"{len(heads)} heads ({', '.join(heads)}): a deploy would not know "
                 "which to migrate to; join them with `alembic merge heads`", where)
        ]  # fmt: skip
    dialect = dialect_of(settings)
    at = dialect_only(settings, dialect)
    # The same revisions, dialect and interpreter give the same SQL: rendered once.
    key = ("sql", str(migrations_dir(settings)), dialect, at.runtime.check_migrations())
    sql = project.once(key, lambda: offline_sql(settings, at=at, start="base", end="head"))
    revisions = {r.id: r for r in all_revisions(settings)}
    report = lint_sql(sql, revisions, production=settings.production, dialect=dialect)
    findings = report.findings
    items: list[Item] = []
    if dialect == "postgresql":
        found = squawk.binary()
        if found is None:
            missing = "squawk is not installed (pip install 'deploytools[gate]'): our own lint"
            items.append(Item(env, "could-not-run", f"{missing}'s rules ran instead", where))
        else:
            findings = [f for f in findings if f.rule not in squawk.SQUAWK_OF]
            violations = squawk.run(found, sql, project.root)
            items += _squawk(env, violations, revisions, settings, project)
    # A finding the revision marks reviewed is accepted: shown, never a warning (--strict).
    items += [
        Item(env, "fail" if f.severity == "error" else "pass" if f.reviewed else "warn", f.what,
             where)
        for f in findings
    ]  # fmt: skip
    if not any(item.status == "fail" for item in items):
        linted = f"{len(report.revisions)} revision(s)"
        items.append(Item(env, "pass", f"{linted}, no unreviewed risk in {dialect} SQL", where))
    return items


def _squawk(
    env: str,
    violations: list[squawk.Violation],
    revisions: Mapping[str, Revision],
    settings: EnvironmentSettings,
    project: Project,
) -> list[Item]:
    """Squawk's violations under our policy: an error in production unless reviewed."""
    items = []
    for v in violations:
        revision = revisions.get(v.revision)
        reason = v.reviewed_by(revision.reviewed if revision else {})
        status: Status = "pass" if reason else "fail" if settings.production else "warn"
        note = f" [reviewed: {reason}]" if reason else ""
        where = project.shown(Path(revision.path)) if revision else alembic_where(settings)
        items.append(
            Item(env, status, f"revision {v.revision}: squawk {v.rule}: {v.message}{note}", where)
        )
    return items


@register(
    "migration-roundtrip", per_environment=False, needs=frozenset({"app interpreter", "docker"})
)
def check_roundtrip(project: Project, env: str | None) -> list[Item]:
    """upgrade head, downgrade base, upgrade head on a throwaway database, where deploys run
    alembic."""
    from deploytools.gate import roundtrip

    loaded = project.loaded()
    process = next((s for s in loaded if s.runtime == "process"), None)
    if process is not None:  # the same revisions: the interpreter's run needs no image build
        return [roundtrip.on_interpreter(project, process)]
    groups: dict[Hashable, list[EnvironmentSettings]] = {}
    for settings in loaded:
        if settings.compose is not None:
            groups.setdefault(roundtrip.image_key(settings), []).append(settings)
    return [roundtrip.in_image(project, group) for group in groups.values()]
