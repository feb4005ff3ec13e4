"""Migration safety lint: read the offline SQL of revisions and flag what locks or loses data.

Rules (a warning everywhere; an error for a production environment unless the revision's
``reviewed`` mapping names the rule with the reason it is safe):

    drop-table                  DROP TABLE loses the table's rows
    drop-column                 DROP COLUMN loses the column's data (and breaks code reading it)
    alter-type                  ALTER COLUMN ... TYPE rewrites the table under an exclusive lock
    not-null-without-default    SET NOT NULL (no SET DEFAULT in the revision) scans under an
                                exclusive lock; ADD COLUMN ... NOT NULL without DEFAULT fails
                                on a table with rows
    create-index                CREATE INDEX without CONCURRENTLY blocks writes while it builds
    rename                      RENAME breaks the code of the release still running
    truncate                    TRUNCATE deletes every row

Statements on a table created (plain CREATE TABLE, not IF NOT EXISTS) in the same revision are
not flagged: nobody uses it yet. The SQL is read as the server reads it (``sqltext``): comments,
string literals and dollar quotes cannot hide a statement or pass for one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from deploytools.config import EnvironmentSettings
from deploytools.db.database import open_database
from deploytools.db.migrate import Where, offline_sql
from deploytools.db.revisions import Revision, all_revisions
from deploytools.db.sqltext import Comment, scan
from deploytools.redact import Redactor

SECTION = re.compile(r"^Running upgrade (.*) -> (\S+)$")  # alembic's comment before a revision
IDENT = r'(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[^\W\d][\w$]*)'
NAME = rf"({IDENT}(?: ?\. ?{IDENT})*)"  # schema-qualified, quoted or not
TABLE_OF = {
    # Only a plain CREATE TABLE makes a table new: IF NOT EXISTS may meet one full of rows.
    "create": re.compile(rf"^CREATE (?:UNLOGGED )?TABLE (?!IF NOT EXISTS ){NAME}", re.I),
    "alter": re.compile(rf"^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?{NAME}", re.I),
    "index": re.compile(
        rf"^CREATE (?:UNIQUE )?INDEX (?:CONCURRENTLY )?(?:IF NOT EXISTS )?(?:\S+ )?ON "
        rf"(?:ONLY )?{NAME}",
        re.I,
    ),
}
# ALTER TABLE ... DROP x without COLUMN drops the column too; these DROPs do not.
NOT_A_COLUMN = r"(?!CONSTRAINT\b|DEFAULT\b|NOT NULL\b|EXPRESSION\b|IDENTITY\b)"
RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "drop-table": (re.compile(r"^DROP TABLE", re.I), "loses the table and its rows"),
    "drop-column": (
        re.compile(rf"^ALTER TABLE .*\bDROP (?:COLUMN\b|{NOT_A_COLUMN}{IDENT})", re.I),
        "loses the column's data",
    ),
    "alter-type": (
        re.compile(rf"\bALTER (?:COLUMN )?{IDENT} (?:SET DATA )?TYPE\b", re.I),
        "rewrites the table under an exclusive lock",
    ),
    "create-index": (
        re.compile(r"^CREATE (?:UNIQUE )?INDEX (?!CONCURRENTLY)", re.I),
        "blocks writes to the table while the index builds (use CONCURRENTLY)",
    ),
    "rename": (re.compile(r"^ALTER TABLE .*\bRENAME\b", re.I), "breaks the running release's code"),
    "truncate": (re.compile(r"^TRUNCATE\b", re.I), "deletes every row of the table"),
}
SET_NOT_NULL = re.compile(rf"\bALTER (?:COLUMN )?{NAME} SET NOT NULL\b", re.I)
SET_DEFAULT = re.compile(rf"\bALTER (?:COLUMN )?{NAME} SET DEFAULT\b", re.I)
ADD_NOT_NULL = re.compile(r"\bADD COLUMN\b(?=.*\bNOT NULL\b)(?!.*\bDEFAULT\b)", re.I)
BOOKKEEPING = ("UPDATE ALEMBIC_VERSION", "INSERT INTO ALEMBIC_VERSION", "BEGIN", "COMMIT")


@dataclass(frozen=True)
class Finding:
    revision: str
    rule: str
    severity: str  # warning | error
    statement: str
    why: str
    reviewed: str | None = None  # the revision's reason when the rule is reviewed

    def __str__(self) -> str:
        return f"{self.severity}: {self.what}"

    @property
    def what(self) -> str:
        """The finding without its severity (for a warning or an error line that says it)."""
        note = f" [reviewed: {self.reviewed}]" if self.reviewed else ""
        return f"revision {self.revision}: {self.rule}: {self.why}: {self.statement}{note}"


@dataclass(frozen=True)
class LintReport:
    findings: list[Finding] = field(default_factory=list)
    revisions: list[str] = field(default_factory=list)  # those whose SQL was read, in order

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors


def lint(
    settings: EnvironmentSettings,
    *,
    at: Where,
    start: str | None = "base",
    end: str = "head",
    dialect: str | None = None,
    redactor: Redactor | None = None,
) -> LintReport:
    """Lint revisions after ``start`` up to ``end`` (``start=None``: those the database on
    ``at.host`` lacks), as the SQL env.py renders at ``at`` (a release being deployed)."""
    sql = offline_sql(settings, at=at, start=start, end=end, redactor=redactor)
    return lint_rendered(settings, sql, dialect)


def lint_rendered(
    settings: EnvironmentSettings, sql: str, dialect: str | None = None
) -> LintReport:
    """Findings in ``sql``, rendered for the env file's URL (or ``dialect``), by revision."""
    dialect = dialect or open_database(settings).engine
    revisions = {r.id: r for r in all_revisions(settings)}
    return lint_sql(sql, revisions, production=settings.production, dialect=dialect)


def lint_sql(
    sql: str,
    revisions: Mapping[str, Revision],
    *,
    production: bool,
    dialect: str = "postgresql",
) -> LintReport:
    """Pure: findings in the offline SQL of an upgrade, by revision."""
    findings, linted = [], []
    for revision_id, statements in _sections(sql, dialect):
        linted.append(revision_id)
        revision = revisions.get(revision_id)
        reviewed = revision.reviewed if revision else {}
        for rule, statement, why in _check(statements):
            severity = "error" if production and rule not in reviewed else "warning"
            findings.append(
                Finding(revision_id, rule, severity, _short(statement), why, reviewed.get(rule))
            )
    return LintReport(findings, linted)


def _sections(sql: str, dialect: str) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """``(revision, [(statement as shown, statement as the rules read it)])`` per revision."""
    revision: str | None = None
    statements: list[tuple[str, str]] = []
    for item in scan(sql, dialect):
        if isinstance(item, Comment):
            if mark := SECTION.match(item.text):
                if revision is not None:
                    yield revision, statements
                revision, statements = mark.group(2), []
        elif revision is not None and not item.masked.upper().startswith(BOOKKEEPING):
            statements.append((item.text, item.masked))
    if revision is not None:
        yield revision, statements


def _check(statements: list[tuple[str, str]]) -> Iterator[tuple[str, str, str]]:
    created = {_name(m) for _, s in statements if (m := TABLE_OF["create"].match(s))}
    defaulted = {(_table(s), _name(m)) for _, s in statements for m in SET_DEFAULT.finditer(s)}
    for shown, statement in statements:
        table = _table(statement)
        if table is not None and table in created:
            continue
        for rule, (pattern, why) in RULES.items():
            if pattern.search(statement):
                yield rule, shown, why
        for match in SET_NOT_NULL.finditer(statement):
            if (table, _name(match)) not in defaulted:
                yield (
                    "not-null-without-default",
                    shown,
                    "SET NOT NULL scans the table under an exclusive lock",
                )
        if ADD_NOT_NULL.search(statement):
            yield (
                "not-null-without-default",
                shown,
                "a NOT NULL column without DEFAULT fails on a table with rows",
            )


def _table(statement: str) -> str | None:
    for kind in ("alter", "index"):
        if match := TABLE_OF[kind].match(statement):
            return _name(match)
    return None


def _name(match: re.Match[str]) -> str:
    """A (qualified) name as the server resolves it: quoted parts kept, the others lowercased."""
    parts = re.findall(IDENT, match.group(1))
    return ".".join(
        p[1:-1].replace('""', '"') if p[0] in "\"`[" else p.lower() for p in parts
    )


def _short(statement: str, limit: int = 160) -> str:
    return statement if len(statement) <= limit else statement[: limit - 3] + "..."
