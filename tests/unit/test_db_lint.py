"""Migration-safety lint on offline SQL: each rule, the new-table exemption, reviews, severity."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploytools.db.lint import lint, lint_sql
from deploytools.db.revisions import Revision
from deploytools.errors import OperatorError
from deploytools.hosts.local import LocalHost
from deploytools.runtime.migrations import dialect_only
from deploytools.runtime.process import ProcessRuntime
from deploytools.steps.deploy import LintMigrations
from deploytools.testing import MemoryHost, run_context
from tests.support.dbenv import CapturedUi, app_with_revision, make_settings

SQL = """BEGIN;

-- Running upgrade 0001 -> 0002

ALTER TABLE users DROP COLUMN name;

DROP TABLE legacy_audit;

ALTER TABLE orders ALTER COLUMN amount TYPE BIGINT;

ALTER TABLE users ALTER COLUMN email SET NOT NULL;

ALTER TABLE users ADD COLUMN plan TEXT NOT NULL;

ALTER TABLE users ADD COLUMN tier TEXT DEFAULT 'free' NOT NULL;

CREATE INDEX ix_users_email ON users (email);

CREATE INDEX CONCURRENTLY ix_users_plan ON users (plan);

ALTER TABLE orders RENAME COLUMN note TO comment;

UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';

-- Running upgrade 0002 -> 0003

CREATE TABLE events (
    id SERIAL NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (id)
);

CREATE INDEX ix_events_kind ON events (kind);

ALTER TABLE events ADD COLUMN source TEXT NOT NULL;

ALTER TABLE "users" ALTER COLUMN "plan" SET DEFAULT 'free';

ALTER TABLE "users" ALTER COLUMN "plan" SET NOT NULL;

UPDATE alembic_version SET version_num='0003' WHERE alembic_version.version_num = '0002';

COMMIT;
"""


def revision(rid: str, reviewed: dict[str, str] | None = None) -> Revision:
    return Revision(rid, (), "", f"/m/{rid}.py", None, reviewed or {})


def rules(report_findings: list[object]) -> list[tuple[str, str]]:
    return [(f.revision, f.rule) for f in report_findings]  # type: ignore[attr-defined]


def test_each_rule_fires_once_where_it_should() -> None:
    report = lint_sql(SQL, {"0002": revision("0002")}, production=False)
    assert rules(report.findings) == [
        ("0002", "drop-column"),
        ("0002", "drop-table"),
        ("0002", "alter-type"),
        ("0002", "not-null-without-default"),  # SET NOT NULL, no SET DEFAULT
        ("0002", "not-null-without-default"),  # ADD COLUMN ... NOT NULL, no DEFAULT
        ("0002", "create-index"),
        ("0002", "rename"),
    ]
    assert report.ok and report.errors == [] and len(report.warnings) == 7


def test_new_tables_and_defaulted_columns_are_not_flagged() -> None:
    report = lint_sql(SQL, {}, production=True)
    assert [f for f in report.findings if f.revision == "0003"] == []


def test_production_turns_unreviewed_findings_into_errors() -> None:
    reviewed = {"drop-column": "copied to first/last_name first", "rename": "app reads both"}
    report = lint_sql(SQL, {"0002": revision("0002", reviewed)}, production=True)
    assert not report.ok
    assert sorted(f.rule for f in report.warnings) == ["drop-column", "rename"]
    assert len(report.errors) == 5
    drop = next(f for f in report.findings if f.rule == "drop-column")
    assert drop.reviewed == "copied to first/last_name first"
    assert str(drop) == (
        "warning: revision 0002: drop-column: loses the column's data: "
        "ALTER TABLE users DROP COLUMN name [reviewed: copied to first/last_name first]"
    )


@pytest.mark.parametrize("sql", ["", "BEGIN;\nCOMMIT;\n"])
def test_nothing_pending_means_no_findings(sql: str) -> None:
    assert lint_sql(sql, {}, production=True).findings == []


def upgrade_sql(*statements: str) -> str:
    """Offline SQL of one revision 0004, as alembic writes it: each statement, ";", blank line."""
    body = "".join(f"{s};\n\n" for s in statements)
    return f"BEGIN;\n\n-- Running upgrade 0003 -> 0004\n\n{body}COMMIT;\n"


def found(*statements: str, dialect: str = "postgresql") -> list[str]:
    report = lint_sql(upgrade_sql(*statements), {}, production=True, dialect=dialect)
    return [f.rule for f in report.findings]


@pytest.mark.parametrize(
    ("statement", "rule"),
    [
        ("/* c */ DROP TABLE orders", "drop-table"),
        ("-- c\nDROP TABLE orders", "drop-table"),
        ("/* a /* nested */ b */ DROP TABLE orders", "drop-table"),
        ("DROP /* c */ TABLE orders", "drop-table"),
        ("CREATE /* c */ INDEX ix_orders_note ON orders (note)", "create-index"),
        ("CREATE INDEX -- CONCURRENTLY\n ix_orders_note ON orders (note)", "create-index"),
        ("ALTER TABLE orders -- c\n RENAME COLUMN note TO comment", "rename"),
        ("/* c */ ALTER /* c */ TABLE orders ALTER COLUMN amount_cents TYPE BIGINT", "alter-type"),
        ("UPDATE orders SET note = '/* no comment' WHERE id = 1;\nDROP TABLE orders", "drop-table"),
    ],
)
def test_a_comment_does_not_hide_a_statement(statement: str, rule: str) -> None:
    assert found(statement) == [rule]


def test_a_trailing_comment_does_not_join_the_next_statement() -> None:
    # alembic puts its ";" after the statement's text: here inside the comment.
    assert found("UPDATE orders SET note = '' -- backfill", "DROP TABLE orders") == ["drop-table"]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO notes (body) VALUES ('old;\nDROP TABLE orders')",
        "INSERT INTO notes (body) VALUES (E'it\\'s;\nDROP TABLE orders')",
        "CREATE FUNCTION f() RETURNS void AS $body$\nBEGIN\n  ALTER TABLE orders DROP COLUMN note;"
        "\nEND\n$body$ LANGUAGE plpgsql",
        "COMMENT ON TABLE orders IS 'we DROP COLUMN note later'",
    ],
)
def test_quoted_text_is_not_taken_for_statements(statement: str) -> None:
    assert found(statement) == []


def test_sqlite_comments_do_not_nest() -> None:
    assert found("/* a /* b */ DROP TABLE orders", dialect="sqlite") == ["drop-table"]


@pytest.mark.parametrize(
    "statement", ["TRUNCATE orders", "truncate table only orders, users cascade"]
)
def test_truncate_is_flagged(statement: str) -> None:
    report = lint_sql(upgrade_sql(statement), {}, production=True)
    assert [(f.rule, f.severity) for f in report.findings] == [("truncate", "error")]
    assert report.findings[0].why == "deletes every row of the table"


def test_create_table_if_not_exists_does_not_make_an_existing_table_new() -> None:
    statements = (
        "CREATE TABLE IF NOT EXISTS orders (id SERIAL NOT NULL, PRIMARY KEY (id))",
        "ALTER TABLE orders DROP COLUMN note",
        "CREATE INDEX ix_orders_amount ON orders (amount_cents)",
    )
    assert found(*statements) == ["drop-column", "create-index"]
    created = ("CREATE TABLE orders (id SERIAL NOT NULL, PRIMARY KEY (id))", *statements[1:])
    assert found(*created) == []


def test_tables_are_told_apart_by_their_whole_qualified_name() -> None:
    statements = (
        'CREATE TABLE "public"."events" (id INTEGER)',
        'ALTER TABLE "public"."orders" DROP COLUMN note',
        "ALTER TABLE public.events ADD COLUMN kind TEXT NOT NULL",
    )
    assert found(*statements) == ["drop-column"]


@pytest.mark.parametrize(
    ("statement", "rule"),
    [
        ("ALTER TABLE orders DROP note", "drop-column"),
        ("ALTER TABLE orders ALTER amount_cents TYPE BIGINT", "alter-type"),
    ],
)
def test_optional_keywords_do_not_hide_a_rule(statement: str, rule: str) -> None:
    assert found(statement) == [rule]


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey",
        "ALTER TABLE orders ALTER COLUMN note DROP DEFAULT",
        "ALTER TABLE orders ALTER COLUMN note DROP NOT NULL",
        "CREATE INDEX CONCURRENTLY ix_orders_note ON orders (note)",
    ],
)
def test_safe_statements_are_not_flagged(statement: str) -> None:
    assert found(statement) == []


def test_an_autocommit_block_is_linted_like_the_rest_of_its_revision() -> None:
    # alembic's offline SQL of autocommit_block(): COMMIT, the statement, BEGIN.
    sql = upgrade_sql("COMMIT", "CREATE INDEX ix_orders_note ON orders (note)", "BEGIN")
    assert [(f.revision, f.rule) for f in lint_sql(sql, {}, production=True).findings] == [
        ("0004", "create-index")
    ]


def test_the_statement_is_shown_without_its_comments() -> None:
    report = lint_sql(upgrade_sql("/* old */ DROP TABLE  -- gone\n orders"), {}, production=True)
    assert report.findings[0].statement == "DROP TABLE orders"


READS_ROWS = """
    def upgrade() -> None:
        for (user_id,) in op.get_bind().execute(sa.text("SELECT id FROM users")):
            op.execute(f"UPDATE users SET email = lower(email) WHERE id = {user_id}")


    def downgrade() -> None:
        pass
    """


def test_a_revision_that_needs_a_database_offline_is_named(tmp_path: Path) -> None:
    app = app_with_revision(tmp_path, READS_ROWS)
    settings = make_settings(tmp_path, "postgresql://app@127.0.0.1:9/app", app_dir=app)

    with pytest.raises(OperatorError) as caught:
        lint(settings, at=dialect_only(settings, "postgresql"), start="0003", dialect="postgresql")

    assert caught.value.problem.startswith("revision 0004 cannot be rendered as SQL offline")
    assert "context.is_offline_mode()" in caught.value.fix


@pytest.mark.parametrize("production", [False, True])
def test_a_deploy_that_cannot_lint_goes_on_outside_production_only(
    tmp_path: Path, production: bool
) -> None:
    app = app_with_revision(tmp_path, READS_ROWS)
    database = tmp_path / "never-made.sqlite3"
    settings = make_settings(tmp_path, f"sqlite:///{database}", app_dir=app)
    settings = settings.model_copy(update={"production": production})
    ui, host = CapturedUi(), MemoryHost()
    # The release's runtime: the app's interpreter in app_dir (a release being built there).
    values = {"DATABASE_URL": f"sqlite:///{database}"}
    runtime = ProcessRuntime(settings, LocalHost(), values)
    ctx = run_context(settings, host, ui, env_values=values, _runtime=runtime)

    if production:
        with pytest.raises(OperatorError, match="revision 0004 cannot be rendered as SQL offline"):
            LintMigrations().run(ctx)
    else:
        said = LintMigrations().run(ctx)
        assert said["skipped"].startswith("revision 0004 cannot be rendered"), said
    assert not database.exists()  # reading the revision of a database not made yet makes none
