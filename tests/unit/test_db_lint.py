"""Migration-safety lint on offline SQL: each rule, the new-table exemption, reviews, severity."""

from __future__ import annotations

import pytest

from deploytools.db.lint import lint_sql
from deploytools.db.revisions import Revision

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
