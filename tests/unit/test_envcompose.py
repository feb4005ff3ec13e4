"""The env file compose reads (``render``) and how compose reads the operator's own file.

What compose makes of these lines was read off compose v2.40.3 (``docker compose config``);
tests/integration/stack/test_compose_env_file.py asks the installed compose the same questions.
"""

from __future__ import annotations

import pytest

from deploytools.env import file as envfile
from deploytools.env.compose import compose_findings, compose_reading, quoted, render
from deploytools.errors import OperatorError


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("plain", "'plain'"),
        ("abc$def", "'abc$def'"),
        ("x${HOME}y", "'x${HOME}y'"),
        ('say "hi" # not a comment', "'say \"hi\" # not a comment'"),
        ("  spaced  ", "'  spaced  '"),
        ("back\\slash", "'back\\slash'"),
        ("", "''"),
        ("it's $$", '"it\'s $$$$"'),
        ("ends\\", '"ends\\\\"'),
        ('q"\\$\n\r', '"q\\"\\\\$$\\n\\r"'),
    ],
)
def test_values_are_quoted_so_compose_keeps_them(value: str, line: str) -> None:
    assert quoted(value) == line


def test_the_copy_holds_every_key_in_order() -> None:
    values = {"B": "2", "A": "a$b", "EMPTY": ""}
    assert render(values, "config/prod.env") == "B='2'\nA='a$b'\nEMPTY=''\n"


def test_a_key_compose_cannot_read_is_refused_without_showing_it() -> None:
    with pytest.raises(OperatorError) as refused:
        render({"GOOD": "1", "s3cr3t-w0rd": ""}, "config/prod.env")
    assert "config/prod.env has a line that docker compose cannot read" in refused.value.problem
    assert "s3cr3t" not in str(refused.value)
    assert "env.validate" in refused.value.fix


def _line(text: str) -> envfile.EnvLine:
    [line] = envfile.parse(text.encode()).lines
    assert line.key is not None, text
    return line


@pytest.mark.parametrize(
    ("text", "compose", "interpolates"),
    [
        ("K=abc$def", "abc$def", True),
        ("K=a$$b", "a$$b", True),
        ("K=x${HOME}y", "x${HOME}y", True),
        ("K=a$1b", "a$1b", False),  # not a variable name: compose keeps it
        ("K=a$-b", "a$-b", False),
        ("K=cost$", "cost$", False),
        ("K='q$w'", "q$w", False),
        ("K='a\\\\b'", "a\\\\b", False),  # single quotes: backslashes as written
        ("K='it\\'s'", "it's", False),
        ('K="a\\\\b\\"c\\n"', 'a\\b"c\n', False),
        ('K="a\\qb"', "a\\qb", False),  # an unknown escape keeps its backslash
        ("K=\"a\\'b\"", "a\\'b", False),
        ('K="\\$HOME"', "$HOME", False),  # an escaped $ is not interpolated
        ('K="a$$b"', "a$$b", True),
        ("K=has # comment", "has", False),
    ],
)
def test_how_compose_reads_a_line(text: str, compose: str, interpolates: bool) -> None:
    reading = compose_reading(_line(text))
    assert (reading.text, reading.interpolates) == (compose, interpolates)


def test_findings_name_the_keys_compose_would_change_and_never_a_value() -> None:
    doc = envfile.parse(
        b"SAME=plain\n"
        b"DOLLAR=abc$def\n"
        b"DOUBLE=\"a$$b\"\n"
        b"QUOTED='kept$as$is'\n"
        b"ESCAPED='c:\\\\dir'\n"
        b"APOSTROPHE=\"it\\'s\"\n"
        b"HASH='has # hash'\n"
        b"PASSWORD=Zx9$Qw8Er7Ty6\n"
    )
    found = compose_findings(doc)
    assert [(f.key, f.line, f.rule) for f in found] == [
        ("DOLLAR", 2, "compose-value"),
        ("DOUBLE", 3, "compose-value"),
        ("ESCAPED", 5, "compose-value"),
        ("APOSTROPHE", 6, "compose-value"),
        ("PASSWORD", 8, "compose-value"),
    ]
    assert "replaces its $" in found[0].problem
    assert "backslashes" in found[2].problem
    text = " ".join(f.problem + f.fix for f in found)
    for value in ("abc", "def", "Zx9", "Qw8Er7Ty6", "dir"):
        assert value not in text


def test_a_value_set_by_deploytools_is_read_as_written() -> None:
    doc = envfile.parse(b"A=old\n").set("A", "it's $HOME").set("B", "c:\\dir$x")
    assert doc.render() == envfile.parse(doc.render().encode()).render()
    assert [envfile.parse(doc.render().encode()).lines[i] for i in (0, 1)] == doc.lines
