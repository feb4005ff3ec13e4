"""migrations: one head, then Squawk (``gate.squawk``; PostgreSQL) and our own lint
(``db.lint``: where Squawk has no rule, and alone on SQLite) over every revision's offline SQL,
per environment; risky SQL is an error in production unless the revision marks it reviewed.
No database, no engine.

migration-roundtrip: ``upgrade head`` -> ``downgrade base`` -> ``upgrade head`` on a throwaway
SQLite database, run by the app's alembic on the app's interpreter as a process deploy runs it
(``db.migrate``): a downgrade that does not undo its upgrade fails here, not during a rollback.
Then ``alembic check`` there: models (env.py's ``target_metadata``) that the migrations do not
make fail too, when the project declares them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from deploytools.config import EnvironmentSettings
from deploytools.errors import DeployToolsError
from deploytools.gate import squawk
from deploytools.gate.project import Project
from deploytools.gate.registry import Item, Status, register

if TYPE_CHECKING:
    from deploytools.db.revisions import Revision
    from deploytools.runtime.process import ProcessRuntime

TARGET = "revisions"


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
    where = _where(settings)
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
        where = project.shown(Path(revision.path)) if revision else _where(settings)
        items.append(
            Item(env, status, f"revision {v.revision}: squawk {v.rule}: {v.message}{note}", where)
        )
    return items


@register("migration-roundtrip", per_environment=False, needs=frozenset({"app interpreter"}))
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
    from deploytools.gate.throwaway import throwaway
    from deploytools.hosts.local import LocalHost
    from deploytools.runtime.process import ProcessRuntime
    from deploytools.ui import Ui

    where = _where(settings)
    key = settings.database.url_key
    quiet = Ui(stdout=io.StringIO(), stderr=io.StringIO())
    with tempfile.TemporaryDirectory(prefix="deploytools-verify-") as scratch:
        with throwaway(Path(scratch)) as database:
            env_file = Path(scratch) / "roundtrip.env"
            env_file.write_text(f"{key}={database.url}\n", encoding="utf-8")
            # deploytools reads the revision from the env file's URL, the app's env.py from its
            # environment
            throwaway_settings = settings.model_copy(update={"env_file": str(env_file)})
            runtime = ProcessRuntime(throwaway_settings, LocalHost(), {key: database.url})
            at = Where(LocalHost(), runtime)
            for move, target in ((upgrade, "head"), (downgrade, "base"), (upgrade, "head")):
                try:
                    move(throwaway_settings, quiet, target, at=at)
                except DeployToolsError as exc:
                    said = exc.problem.splitlines()[0]
                    return Item(TARGET, "fail", f"{move.__name__} {target} on a throwaway "
                                f"{database.kind} database failed: {said}", where)  # fmt: skip
            matched, models = _models_match(throwaway_settings, runtime, {key: database.url})
    said = (
        f"upgrade head, downgrade base, upgrade head on a throwaway {database.kind} database "
        f"({settings.name}'s interpreter); {models}"
    )
    return Item(TARGET, "pass" if matched else "fail", said, where)


NO_METADATA = "does not provide a MetaData object"
DIFFERS = "New upgrade operations detected"


def _models_match(
    settings: EnvironmentSettings, runtime: ProcessRuntime, env: dict[str, str]
) -> tuple[bool, str]:
    """``alembic check`` on the database just upgraded: do the app's models (env.py's
    ``target_metadata``) match the schema its migrations make? (True, what it found) also
    when the project declares no metadata, which it says."""
    from deploytools.commands import alembic
    from deploytools.db.location import release_ini

    done = runtime.run_alembic(None, alembic.check(release_ini(settings)), env)
    output = done.stdout + done.stderr
    if done.returncode == 0:
        return True, "alembic check: the models match the schema"
    if NO_METADATA in output:
        return True, "alembic check not run: env.py gives no target_metadata (no models declared)"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    found = next((line for line in lines if DIFFERS in line), lines[-1] if lines else "")
    return False, f"alembic check: the models differ from the schema the migrations make: {found}"


def _where(settings: EnvironmentSettings) -> str:
    return settings.database.alembic_dir or settings.database.alembic_ini
