"""migrations: one head, and the safety lint of every revision (``db.lint``'s rules) per
environment, risky SQL being an error in production; no database, no engine (offline SQL).

migration-roundtrip: ``upgrade head`` -> ``downgrade base`` -> ``upgrade head`` on a throwaway
SQLite database, run by the app's alembic on the app's interpreter as a process deploy runs it
(``db.migrate``): a downgrade that does not undo its upgrade fails here, not during a rollback.
"""

from __future__ import annotations

from deploytools.config import EnvironmentSettings
from deploytools.errors import DeployToolsError
from deploytools.gate.project import Project
from deploytools.gate.registry import Item, register

TARGET = "revisions"


@register("migrations")
def check_migrations(project: Project, env: str | None) -> list[Item]:
    """A single head, and the migration-safety lint of every revision's offline SQL."""
    from deploytools.db.revisions import script_directory
    from deploytools.runtime.migrations import migration_safety

    assert env is not None
    settings = project.settings(env)
    where = _where(settings)
    heads = sorted(script_directory(settings).get_heads())
    if len(heads) > 1:
        return [
            Item(env, "fail", f"{len(heads)} heads ({', '.join(heads)}): a deploy would not know "
                 "which to migrate to; join them with `alembic merge heads`", where)
        ]  # fmt: skip
    report = migration_safety(settings)
    # A finding the revision marks reviewed is accepted: shown, never a warning (--strict).
    items = [
        Item(env, "fail" if f.severity == "error" else "pass" if f.reviewed else "warn", f.what,
             where)
        for f in report.findings
    ]  # fmt: skip
    if report.ok:
        items.append(Item(env, "pass", f"{len(report.warnings)} warning(s), no error", where))
    return items


@register("migration-roundtrip", per_environment=False)
def check_roundtrip(project: Project, env: str | None) -> list[Item]:
    """upgrade head, downgrade base, upgrade head on a throwaway SQLite database."""
    settings = next((s for s in project.loaded() if s.runtime == "process"), None)
    if settings is None:
        return [
            Item(TARGET, "could-not-run", "no process environment selected: alembic runs in "
                 "the release's image for compose, which the gate does not build; the lint "
                 "and the head check ran", "")
        ]  # fmt: skip
    return [_roundtrip(settings)]


def _roundtrip(settings: EnvironmentSettings) -> Item:
    import io
    import tempfile
    from pathlib import Path

    from deploytools.db.migrate import Where, downgrade, upgrade
    from deploytools.hosts.local import LocalHost
    from deploytools.runtime.process import ProcessRuntime
    from deploytools.ui import Ui

    where = _where(settings)
    key = settings.database.url_key
    quiet = Ui(stdout=io.StringIO(), stderr=io.StringIO())
    with tempfile.TemporaryDirectory(prefix="deploytools-verify-") as scratch:
        url = f"sqlite:///{Path(scratch) / 'roundtrip.sqlite3'}"
        env_file = Path(scratch) / "roundtrip.env"
        env_file.write_text(f"{key}={url}\n", encoding="utf-8")
        # deploytools reads the revision from the env file's URL, the app's env.py from its env
        throwaway = settings.model_copy(update={"env_file": str(env_file)})
        at = Where(LocalHost(), ProcessRuntime(throwaway, LocalHost(), {key: url}))
        for move, target in ((upgrade, "head"), (downgrade, "base"), (upgrade, "head")):
            try:
                move(throwaway, quiet, target, at=at)
            except DeployToolsError as exc:
                said = exc.problem.splitlines()[0]
                return Item(TARGET, "fail", f"{move.__name__} {target} on a throwaway SQLite "
                            f"database failed: {said}", where)  # fmt: skip
    return Item(
        TARGET,
        "pass",
        f"upgrade head, downgrade base, upgrade head on a throwaway SQLite database "
        f"({settings.name}'s interpreter)",
        where,
    )


def _where(settings: EnvironmentSettings) -> str:
    return settings.database.alembic_dir or settings.database.alembic_ini
