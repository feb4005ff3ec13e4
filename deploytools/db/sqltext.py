"""SQL text read the way the server reads it, so a lint sees what runs and nothing else.

A regular expression over raw SQL is fooled by a comment before a statement, a ``;`` inside a
string, or a function body in dollar quotes. Here one pass over the text finds the comments,
quoted text and statement ends first (PostgreSQL: nested ``/* */``, ``E''`` escapes and
``$tag$`` quotes; SQLite: backquoted and bracketed names), and only then are statements cut.

Each statement comes twice: ``text`` with comments gone and blanks collapsed (to show), and
``masked`` with the contents of string literals and dollar quotes emptied too (for rules to
read, so that a word inside a literal is never taken for SQL). A comment standing between two
statements is kept as a ``Comment``: alembic's offline output marks each revision with one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$")
CLOSERS = {'"': '"', "`": "`", "[": "]"}  # quoted names, kept as they are
PLAIN = re.compile(r"[^;'\"$`\[/-]+")  # nothing here can start a comment, a quote or an end


@dataclass(frozen=True)
class Statement:
    text: str
    masked: str


@dataclass(frozen=True)
class Comment:
    text: str  # without its ``--`` or ``/* */``


def scan(sql: str, dialect: str = "postgresql") -> Iterator[Statement | Comment]:
    """Statements and the comments between them, in order; empty statements are skipped."""
    postgres = dialect == "postgresql"
    shown: list[str] = []  # the statement so far, comments replaced by a blank
    masked: list[str] = []
    i = 0

    def flush() -> Iterator[Statement]:
        text, rules = " ".join("".join(shown).split()), " ".join("".join(masked).split())
        shown.clear()
        masked.clear()
        if text:
            yield Statement(text, rules)

    while i < len(sql):
        if plain := PLAIN.match(sql, i):
            shown.append(plain.group())
            masked.append(plain.group())
            i = plain.end()
            continue
        char, pair = sql[i], sql[i : i + 2]
        if char == ";":
            yield from flush()
            i += 1
            continue
        if pair in ("--", "/*"):
            end, body = _line_comment(sql, i) if pair == "--" else _block_comment(sql, i, postgres)
            between = not "".join(shown).strip()
            # alembic ends each statement with ";" and a blank line: after a trailing comment
            # that ";" lands inside it, yet the statement ends there when it runs.
            ends = pair == "--" and body.rstrip().endswith(";") and sql.startswith("\n\n", end)
            if between:
                yield Comment(body.strip())
            shown.append(" ")
            masked.append(" ")
            if ends:
                yield from flush()
            i = end
            continue
        end, kept, hidden = _quoted(sql, i, postgres)
        shown.append(kept)
        masked.append(hidden)
        i = end
    yield from flush()


def _line_comment(sql: str, start: int) -> tuple[int, str]:
    end = sql.find("\n", start)
    end = len(sql) if end < 0 else end
    return end, sql[start + 2 : end]


def _block_comment(sql: str, start: int, nested: bool) -> tuple[int, str]:
    """PostgreSQL nests block comments (``/* a /* b */ c */`` is one); SQLite does not."""
    depth, i = 1, start + 2
    while i < len(sql) and depth:
        pair = sql[i : i + 2]
        if pair == "*/":
            depth, i = depth - 1, i + 2
        elif pair == "/*" and nested:
            depth, i = depth + 1, i + 2
        else:
            i += 1
    return i, sql[start + 2 : i - 2 if depth == 0 else i]


def _quoted(sql: str, start: int, postgres: bool) -> tuple[int, str, str]:
    """From ``start``: (end, the text as is, the text with literal contents emptied).

    A literal, a dollar quote or a quoted name is taken whole, up to its closing quote (the
    end of the text if there is none); any other character is itself."""
    char = sql[start]
    if char == "'":
        escapes = postgres and start > 0 and sql[start - 1] in "Ee" and not _word(sql, start - 2)
        end = _close(sql, start + 1, "'", backslash=escapes)
        return end, sql[start:end], "''"
    if postgres and char == "$" and not _word(sql, start - 1):
        if tag := DOLLAR_TAG.match(sql, start):
            close = sql.find(tag.group(), tag.end())
            end = len(sql) if close < 0 else close + len(tag.group())
            return end, sql[start:end], tag.group() * 2
    closer = CLOSERS.get(char) if char == '"' or not postgres else None
    if closer:
        end = _close(sql, start + 1, closer, backslash=False)
        return end, sql[start:end], sql[start:end]
    return start + 1, char, char


def _close(sql: str, i: int, quote: str, *, backslash: bool) -> int:
    """The index after the closing ``quote`` (a doubled quote is one quote character)."""
    while i < len(sql):
        char = sql[i]
        if backslash and char == "\\":
            i += 2
        elif char == quote and sql[i + 1 : i + 2] == quote and quote != "]":
            i += 2
        elif char == quote:
            return i + 1
        else:
            i += 1
    return len(sql)


def _word(sql: str, i: int) -> bool:
    """Whether ``sql[i]`` continues a name (so ``$`` or ``E`` there is part of it)."""
    return i >= 0 and (sql[i].isalnum() or sql[i] in "_$")
