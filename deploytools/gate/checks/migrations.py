"""migrations: the safety lint of every revision (``db.lint``'s rules), per environment; risky
SQL is an error in production. No database and no engine: the SQL is rendered offline."""

from __future__ import annotations

from deploytools.gate.project import Project
from deploytools.gate.registry import Item, register


@register("migrations")
def check_migrations(project: Project, env: str | None) -> list[Item]:
    """Migration safety lint of every revision's offline SQL (errors in production)."""
    from deploytools.runtime.migrations import migration_safety

    assert env is not None
    settings = project.settings(env)
    report = migration_safety(settings)
    where = settings.database.alembic_ini or "alembic.ini"
    # A finding the revision marks reviewed is accepted: shown, never a warning (--strict).
    items = [
        Item(env, "fail" if f.severity == "error" else "pass" if f.reviewed else "warn", f.what,
             where)
        for f in report.findings
    ]  # fmt: skip
    if report.ok:
        items.append(Item(env, "pass", f"{len(report.warnings)} warning(s), no error", where))
    return items
