"""Where the migrations' offline SQL is rendered: in the release being deployed (after its
build, before the backup), and outside a deploy in images built from the checkout (compose),
through a scripted docker CLI on the Host seam.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploytools.errors import OperatorError
from deploytools.pipeline.engine import Together
from deploytools.pipelines.deploy import deploy_steps
from deploytools.runtime.migrations import checkout_sql
from deploytools.site.lock import DeployLock
from deploytools.steps.base import RunContext
from deploytools.steps.deploy import LintMigrations
from deploytools.testing import MemoryHost, run_context
from tests.support.dbenv import CapturedUi, app_with_revision
from tests.unit.test_compose_runtime import FakeDocker, runtime

URL = "postgresql://app:Pw-s3cret-42@127.0.0.1:5432/app"
DROP = "-- Running upgrade 0003 -> 0004\n\nALTER TABLE users DROP COLUMN email;\n\n"


class SqlDocker(FakeDocker):
    """An engine whose one-off containers print ``sql`` (alembic upgrade --sql); ``build``
    tags the images of the RELEASE_ID it is given, or fails with ``build_fails``."""

    def __init__(self, sql: str = DROP, build_fails: str = "") -> None:
        super().__init__()
        self.sql = sql
        self.build_fails = build_fails

    def _answer(self, argv: list[str]) -> tuple[int, str]:
        if argv[0] == "psql":  # the database's revision
            return 0, "0003\n"
        words = [a for a in argv if not a.startswith("/")]
        release = self.envs[-1].get("RELEASE_ID", "") if self.envs else ""
        if argv[1] == "compose" and "build" in words:
            if self.build_fails:
                return 1, self.build_fails
            self.images[f"exampleapp:{release}"] = f"sha256:{release}"
            return 0, ""
        if argv[1] == "compose" and "run" in words:
            if f"exampleapp:{release}" not in self.images:
                return 1, f"no image exampleapp:{release}"
            return 0, self.sql
        if argv[1:3] == ["image", "rm"]:
            for image in argv[3:]:
                self.images.pop(image, None)
            return 0, ""
        return super()._answer(argv)


def compose_ctx(tmp_path: Path, host: FakeDocker, **update: Any) -> RunContext:
    """A compose environment at revision 0003 whose checkout adds 0004 (its SQL: ``DROP``)."""
    rt = runtime(tmp_path, host)
    app = app_with_revision(tmp_path, "def upgrade():\n    pass\n")
    database = {"alembic_ini": str(app / "alembic.ini")}
    settings = rt.settings.model_copy(
        update={
            "app_dir": str(app),
            "database": rt.settings.database.model_copy(update=database),
            **update,
        }
    )
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config/prod.env").write_text(f"DATABASE_URL={URL}\n")
    rt.settings = settings
    release = "release-t-20260101T000000Z-abc1234"
    return run_context(settings, host, CapturedUi(), _runtime=rt, release=release)


def test_a_deploy_builds_before_it_lints_and_lints_before_its_backup() -> None:
    lock = DeployLock(MemoryHost(), "/s", 60.0, env="t")
    steps = deploy_steps(lock, "deploy", 0.0, allow_dirty=False)

    names = [m.name for s in steps for m in (s.steps if isinstance(s, Together) else (s,))]

    assert names == [
        "validate env", "lock", "snapshot", "build", "lint migrations", "backup", "migrate",
        "keep flags", "start", "wait healthy", "verify celery", "record",
    ]  # fmt: skip


def test_the_lint_renders_the_sql_in_a_container_of_the_release_being_deployed(
    tmp_path: Path,
) -> None:
    host = SqlDocker()
    ctx = compose_ctx(tmp_path, host, production=True)
    host.images[f"exampleapp:{ctx.release}"] = "sha256:new"  # what Build made

    with pytest.raises(OperatorError) as refused:
        LintMigrations().run(ctx)

    assert "revision 0004: drop-column" in refused.value.problem
    [run] = [c for c in host.commands if "run" in c]
    assert run[run.index("run") :] == [
        "run", "--rm", "--no-deps", "-T", "backend",
        "alembic", "-c", "alembic.ini", "upgrade", "0003:head", "--sql",
    ]  # fmt: skip
    assert host.envs[host.commands.index(run)]["RELEASE_ID"] == ctx.release
    assert not [c for c in host.commands if "build" in c]  # the Build step built it


def test_the_dry_run_says_how_it_would_lint_and_runs_no_container(tmp_path: Path) -> None:
    host = SqlDocker()  # no image of the release: nothing was built
    ctx = compose_ctx(tmp_path, host, production=True)

    lines = LintMigrations().plan(ctx)

    assert lines[0] == (
        "lint pending revision(s) 0004 on the SQL `alembic upgrade --sql` renders "
        f"in release {ctx.release} once built (compose runtime)"
    )
    assert "stops the deploy here, before the backup" in lines[1]
    assert lines[2] == "the findings now: invoke db.lint --pending --env t"
    assert [c for c in host.commands if c[0] != "psql"] == []  # psql: the database's revision


def test_sql_outside_a_deploy_is_rendered_in_images_built_for_it_then_untagged(
    tmp_path: Path,
) -> None:
    host = SqlDocker()
    ctx = compose_ctx(tmp_path, host)
    before = dict(host.images)

    sql = checkout_sql(ctx.settings, start="0003", host=host)

    assert sql == DROP
    builds = [i for i, c in enumerate(host.commands) if "build" in c]
    runs = [i for i, c in enumerate(host.commands) if "run" in c]
    assert len(builds) == len(runs) == 1 and builds[0] < runs[0]
    scratch = host.envs[builds[0]]["RELEASE_ID"]
    assert scratch.startswith("sql-t-") and host.envs[runs[0]]["RELEASE_ID"] == scratch
    assert ["docker", "image", "rm", f"exampleapp:{scratch}"] in host.commands
    assert host.images == before  # the release's image is still there, the scratch one gone


def test_a_migrate_service_missing_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    host = SqlDocker()
    ctx = compose_ctx(tmp_path, host)
    settings = ctx.settings.model_copy(
        update={"database": ctx.settings.database.model_copy(update={"migrate_service": "db"})}
    )

    with pytest.raises(OperatorError, match=r"database.migrate_service 'db' is not a service"):
        checkout_sql(settings, start="0003", host=host)

    assert not [c for c in host.commands if "build" in c or "run" in c]


def test_an_image_that_does_not_build_is_an_operator_error_and_leaves_no_tag(
    tmp_path: Path,
) -> None:
    host = SqlDocker(build_fails="failed to solve: COPY requirements.txt: not found")
    ctx = compose_ctx(tmp_path, host)
    before = dict(host.images)

    with pytest.raises(OperatorError) as failed:
        checkout_sql(ctx.settings, start="0003", host=host)

    assert failed.value.exit_code == 2
    assert "did not build" in failed.value.problem
    assert "COPY requirements.txt: not found" in failed.value.problem
    assert not [c for c in host.commands if "run" in c]
    assert host.images == before
