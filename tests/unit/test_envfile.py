"""Env file parsing: malformed lines found with their numbers; good lines read as dotenv does."""

from __future__ import annotations

import io

import pytest
from dotenv import dotenv_values

from deploytools.env import file as envfile
from deploytools.env.file import parse, quote_value
from deploytools.testing import MemoryHost

WELL_FORMED = (
    """\
# a comment
PLAIN=value
EMPTY=
SPACED = around equals
export EXPORTED=1
INLINE=value # a comment
HASH=no#comment
SINGLE='single # not a comment'
DOUBLE="double \\"escaped\\" \\n newline"
SINGLE_ESC='it\\'s'
URL=postgresql://app:pw@db:5432/app
TAB_COMMENT=text\t# comment
WORDS=a b c
"""
    + "TRAILING=spaces  \n"
)


def rules_of(doc: envfile.EnvDocument) -> list[tuple[str, int | None]]:
    return [(f.rule, f.line) for f in doc.findings]


def test_well_formed_lines_read_as_python_dotenv_reads_them() -> None:
    doc = parse(WELL_FORMED.encode())
    assert doc.findings == []
    expected = dotenv_values(stream=io.StringIO(WELL_FORMED), interpolate=False)
    assert doc.values() == {k: v or "" for k, v in expected.items()}


@pytest.mark.parametrize(
    ("text", "rule", "line"),
    [
        ('A=1\nB="unterminated\nC=3\n', "unterminated-quote", 2),
        ("A=1\nB='unterminated\n", "unterminated-quote", 2),
        ("A=1\nA=2\n", "duplicate", 2),
        ("\ufeffA=1\n", "bom", 1),
        ("A=1\nB= # meant as a comment\n", "empty-comment", 2),
        ("A=1\nnot a line\n", "syntax", 2),
        ("A=1\nBARE_KEY\n", "syntax", 2),
        ("A=1\n=novalue\n", "syntax", 2),
        ("A=1\nB-C=1\n", "syntax", 2),
        ('A="x"junk\n', "syntax", 1),
    ],
)
def test_each_malformed_line_is_reported_with_its_number(text: str, rule: str, line: int) -> None:
    assert rules_of(parse(text.encode())) == [(rule, line)]


def test_unterminated_quote_does_not_swallow_the_following_lines() -> None:
    doc = parse(b'A="open\nB=2\nC=3\n')
    assert doc.values() == {"B": "2", "C": "3"}


def test_invalid_utf8_line_is_reported_and_the_rest_still_parsed() -> None:
    doc = parse(b"A=1\nB=\xff\xfe\nC=3\n")
    assert rules_of(doc) == [("syntax", 2)]
    assert doc.values() == {"A": "1", "C": "3"}


def test_all_problems_are_reported_at_once() -> None:
    doc = parse(b'\xef\xbb\xbfA=1\nA=2\nB="x\nnonsense\nC= # c\n')
    assert rules_of(doc) == [
        ("bom", 1),
        ("duplicate", 2),
        ("unterminated-quote", 3),
        ("syntax", 4),
        ("empty-comment", 5),
    ]


def test_findings_never_quote_the_line() -> None:
    doc = parse(b'SECRET_KEY="s3cr3t-MARKER\nsk-MARKER-alone\nTOKEN "MARKERMARKER"\n')
    text = " ".join(f"{f.problem} {f.fix} {f.key}" for f in doc.findings)
    assert "MARKER" not in text
    assert len(doc.findings) == 3


def test_malformed_lines_are_kept_for_the_redactor() -> None:
    doc = parse(b'SECRET_KEY="s3cr3t-MARKER\nsk-MARKER-alone\nTOKEN MARKERMARKER9\n')
    fragments = set(doc.fragment_texts)
    assert {"s3cr3t-MARKER", "sk-MARKER-alone", "MARKERMARKER9"} <= fragments
    assert "TOKEN" not in fragments  # variable names are not learned as secrets


def test_duplicates_keep_every_assignment_and_the_last_wins() -> None:
    doc = parse(b"A=first\nA=second\n")
    assert list(doc.assignments()) == [("A", "first"), ("A", "second")]
    assert doc.values() == {"A": "second"}
    assert doc.line_of() == {"A": 2}  # the value in effect


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "",
        "with space",
        "it's",
        'quote"d',
        "back\\slash",
        "multi\nline",
        "hash #x",
        "$HOME",
    ],
)
def test_quote_value_round_trips_through_python_dotenv(value: str) -> None:
    text = f"K={quote_value(value)}\n"
    assert parse(text.encode()).values() == {"K": value}
    assert dotenv_values(stream=io.StringIO(text), interpolate=False)["K"] == value


def test_set_rewrites_in_place_and_keeps_comments_order_export_and_inline_comment() -> None:
    doc = parse(b"# head\nexport A=1  # note\nB=2\n\n# tail\n")
    out = doc.set("A", "new value").set("C", "3").render()
    assert out == "# head\nexport A='new value'  # note\nB=2\n\n# tail\nC=3\n"


def test_write_is_atomic_through_the_host_with_mode_0600() -> None:
    host = MemoryHost()
    host.write_file("/app/.env", b"# keep me\nA=1\nB=2\n", mode=0o644)
    envfile.update(host, "/app/.env", {"B": "20", "FEATURE_X": "50"})
    assert host.files["/app/.env"] == b"# keep me\nA=1\nB=20\nFEATURE_X=50\n"
    assert host.modes["/app/.env"] == 0o600
