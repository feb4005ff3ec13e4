"""The env file as docker compose reads it, and the copy that makes compose read our values.

Compose reads env files its own way: it replaces ``$`` in unquoted and double-quoted values
(``abc$def`` -> ``abc``, ``a$$b`` -> ``a$b``, ``x${HOME}y`` -> the operator's home) and decodes
backslashes apart from python-dotenv, which deploytools and the host tools (backups,
migrations) read the file with. A database password with a ``$`` then worked on the host and
failed in the containers. So compose never reads the operator's file: the compose runtime
hands it a copy (``render``) in which every value is quoted so that compose yields exactly
python-dotenv's value, and ``env.validate`` names the keys whose values compose would change if
it read the file as it is (an operator's own ``docker compose`` call does).

What compose does was checked against compose v2.40.3 (``docker compose config``); the
integration tests check ``render`` and ``compose_reading`` against the installed compose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from deploytools.env.file import KEY, EnvDocument, EnvLine
from deploytools.errors import OperatorError
from deploytools.findings import Finding

RULE = "compose-value"
# An unescaped ``$`` compose acts on: ``$$``, ``${...}`` or ``$name``; any other ``$`` is kept.
INTERPOLATED = re.compile(r"\$[${A-Za-z_]")
# Backslash escapes compose decodes inside double quotes; any other backslash is kept as it is.
DOUBLE_QUOTED_ESCAPES = {
    "\\": "\\", '"': '"', "$": "$", "n": "\n", "r": "\r", "t": "\t",
    "a": "\a", "b": "\b", "f": "\f", "v": "\v",
}  # fmt: skip


def render(values: Mapping[str, str], source: str) -> str:
    """The env file compose gets: ``KEY=value`` lines that compose reads as ``values``.

    ``source`` names the operator's file in the error about a key compose cannot read (the key
    is not shown: on a malformed line it may be part of a secret).
    """
    for key in values:
        if not KEY.fullmatch(key):
            raise OperatorError(
                f"{source} has a line that docker compose cannot read as KEY=VALUE",
                "run invoke env.validate for this environment: it names the line",
            )
    return "".join(f"{key}={quoted(value)}\n" for key, value in values.items())


def quoted(value: str) -> str:
    """``value`` quoted for compose's env file reader, which then yields it unchanged.

    Single quotes keep everything literal except a quote, and a backslash right before the
    closing quote (read as an escaped quote); every other value goes in double quotes, where
    compose decodes ``\\\\``, ``\\"``, ``\\n``, ``\\r`` and reads ``$$`` as one ``$``.
    """
    if not any(ch in value for ch in "'\n\r") and not value.endswith("\\"):
        return f"'{value}'"
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("$", "$$")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )
    return f'"{escaped}"'


@dataclass(frozen=True)
class ComposeReading:
    """What compose makes of one assignment: its text, and whether it substitutes variables
    (then the text compose yields depends on compose's environment: it is not given)."""

    text: str
    interpolates: bool


def compose_reading(line: EnvLine) -> ComposeReading:
    """How compose reads a well-formed line of the operator's file."""
    if line.quote == "'":
        return ComposeReading(line.written.replace("\\'", "'"), False)
    if line.quote == "":
        return ComposeReading(line.written, bool(INTERPOLATED.search(line.written)))
    text, interpolates, i = [], False, 0
    written = line.written
    while i < len(written):
        pair = written[i : i + 2]
        if pair[:1] == "\\" and pair[1:] in DOUBLE_QUOTED_ESCAPES:
            text.append(DOUBLE_QUOTED_ESCAPES[pair[1:]])
            i += 2
            continue
        interpolates = interpolates or bool(INTERPOLATED.match(pair))
        text.append(written[i])
        i += 1
    return ComposeReading("".join(text), interpolates)


def compose_findings(doc: EnvDocument) -> list[Finding]:
    """The keys whose values compose would change if it read ``doc`` as it is; never a value.

    A deploy is not concerned (it hands compose a copy it reads right): these tell an operator
    who runs ``docker compose`` by hand with this file.
    """
    findings = []
    for line in doc.lines:
        if line.key is None or line.value is None:
            continue
        reading = compose_reading(line)
        if reading.interpolates:
            why = "replaces its $ (a variable, or $$ read as one $)"
        elif reading.text != line.value:
            why = "reads its backslashes otherwise"
        else:
            continue
        findings.append(
            Finding(
                RULE,
                f"docker compose would change the value of {line.key}: it {why}; deploytools "
                "hands compose a copy that keeps the value, a hand-made compose call does not",
                "in single quotes compose reads a value as it is (no ' inside, no \\ at the end)",
                key=line.key,
                line=line.number,
            )
        )
    return findings
