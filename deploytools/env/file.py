"""Env files: parsed line by line with line numbers, and written back atomically.

python-dotenv silently drops or merges some malformed lines (an unterminated quote swallows the
lines after it, a byte-order mark becomes part of the first key), so validation parses each
line itself and reports every problem with its line number. Well-formed lines give the values
python-dotenv would give. The dialect is one ``KEY=VALUE`` per line: a multi-line value is
written with ``\\n`` inside double quotes.

Nothing here prints a value, and ``fragment_texts`` keeps the text of malformed lines so that
a redactor can learn it: a secret on a broken line is still a secret.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from deploytools.errors import OperatorError
from deploytools.findings import Finding
from deploytools.hosts.base import Host

KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
MIN_WORD = 8  # shorter words of a malformed line are not worth masking everywhere
BOM = "\ufeff"
PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:@%+,=~-]*")
INLINE_COMMENT = re.compile(r"\s+#.*")
ESCAPES = {'"': re.compile(r"\\[\\'\"abfnrtv]"), "'": re.compile(r"\\[\\']")}
ENV_FILE_MODE = 0o600


@dataclass(frozen=True)
class EnvLine:
    """One physical line; ``key``/``value`` are set only for a well-formed assignment."""

    number: int
    text: str
    key: str | None = None
    value: str | None = None
    prefix: str = ""  # "export " kept when the line is rewritten
    comment: str = ""  # an inline comment after the value, kept when the line is rewritten
    quote: str = ""  # the quote around the value as written: "", "'" or '"'
    written: str = ""  # the value as written, between its quotes (other readers decode it apart)


@dataclass
class EnvDocument:
    lines: list[EnvLine] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    fragment_texts: list[str] = field(default_factory=list)

    def values(self) -> dict[str, str]:
        """Key -> value, the last assignment winning (as python-dotenv does)."""
        return {
            ln.key: ln.value for ln in self.lines if ln.key is not None and ln.value is not None
        }

    def line_of(self) -> dict[str, int]:
        """Key -> line of the assignment in effect (the last), in order of first appearance."""
        out: dict[str, int] = {}
        for ln in self.lines:
            if ln.key is not None:
                out[ln.key] = ln.number
        return out

    def assignments(self) -> Iterator[tuple[str, str]]:
        """Every well-formed assignment, duplicates included (a redactor must learn them all)."""
        for ln in self.lines:
            if ln.key is not None and ln.value is not None:
                yield ln.key, ln.value

    def set(self, key: str, value: str) -> EnvDocument:
        """A copy with ``key`` set: its last assignment rewritten in place, else appended."""
        lines = list(self.lines)
        quoted = quote_value(value)
        quote = quoted[0] if quoted[:1] in ("'", '"') else ""
        written = quoted[1:-1] if quote else quoted
        for i in range(len(lines) - 1, -1, -1):
            ln = lines[i]
            if ln.key == key:
                text = f"{ln.prefix}{key}={quoted}{ln.comment}"
                lines[i] = replace(ln, text=text, value=value, quote=quote, written=written)
                return replace(self, lines=lines)
        number = len(lines) + 1
        lines.append(EnvLine(number, f"{key}={quoted}", key, value, quote=quote, written=written))
        return replace(self, lines=lines)

    def render(self) -> str:
        return "".join(f"{ln.text}\n" for ln in self.lines)


def quote_value(value: str) -> str:
    """The value as python-dotenv (and docker compose) will read it back unchanged."""
    if PLAIN_VALUE.fullmatch(value):
        return value
    if not any(ch in value for ch in "'\\\n\r"):
        return f"'{value}'"
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def parse(data: bytes) -> EnvDocument:
    """Parse env file bytes; problems become ``Finding``s that name the line, never its text."""
    doc = EnvDocument()
    seen: dict[str, int] = {}
    chunks = data.split(b"\n")
    if chunks and chunks[-1] == b"":
        chunks.pop()
    for number, raw in enumerate(chunks, start=1):
        try:
            text = raw.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            text = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            doc.fragment_texts.extend(_fragments(text))
            doc.lines.append(EnvLine(number, text))
            doc.findings.append(_syntax(number, "is not valid UTF-8", "save the file as UTF-8"))
            continue
        if number == 1 and text.startswith(BOM):
            text = text[len(BOM) :]
            doc.findings.append(
                Finding(
                    "bom",
                    "the file starts with a byte-order mark: python-dotenv reads the first key "
                    "with an invisible character in front, so that key is missing",
                    "save the file as UTF-8 without BOM",
                    line=1,
                )
            )
        line = _parse_line(number, text, doc)
        doc.lines.append(line)
        if line.key is None:
            continue
        if line.key in seen:
            doc.findings.append(
                Finding(
                    "duplicate",
                    f"{line.key} is set again (first on line {seen[line.key]}); python-dotenv "
                    "keeps the last value, other readers the first",
                    "keep one assignment of this key",
                    key=line.key,
                    line=number,
                )
            )
        else:
            seen[line.key] = number
    return doc


def _parse_line(number: int, text: str, doc: EnvDocument) -> EnvLine:
    body = text.strip()
    if not body or body.startswith("#"):
        return EnvLine(number, text)
    prefix = ""
    if body.startswith("export ") or body.startswith("export\t"):
        prefix, body = "export ", body[7:].lstrip()
    match = KEY.match(body)
    rest = body[match.end() :].lstrip(" \t") if match else ""
    if not match or not rest.startswith("="):
        doc.fragment_texts.extend(_fragments(body))
        if match and not rest:
            problem, fix = "has a name but no '='", "write KEY=VALUE (KEY= for an empty value)"
        else:
            problem, fix = "is not a KEY=VALUE line", "write KEY=VALUE with KEY made of A-Z, 0-9, _"
        doc.findings.append(_syntax(number, problem, fix))
        return EnvLine(number, text)
    key = match.group()
    after_eq = rest[1:]
    raw = after_eq.lstrip(" \t")
    if raw[:1] in ("'", '"'):
        return _quoted(number, text, key, prefix, raw, doc)
    if raw.startswith("#") and raw != after_eq:
        doc.findings.append(
            Finding(
                "empty-comment",
                f"{key}= is followed by a comment: python-dotenv reads an empty value, other "
                "readers may take the comment as the value",
                f"write {key}= alone and put the comment on its own line",
                key=key,
                line=number,
            )
        )
        return EnvLine(number, text, key, "", prefix)
    value = INLINE_COMMENT.sub("", raw).rstrip()
    comment = raw[len(value) :] if INLINE_COMMENT.search(raw) else ""
    return EnvLine(number, text, key, value, prefix, comment, written=value)


def _quoted(number: int, text: str, key: str, prefix: str, raw: str, doc: EnvDocument) -> EnvLine:
    quote = raw[0]
    i = 1
    while i < len(raw) and raw[i] != quote:
        i += 2 if raw[i] == "\\" else 1
    if i >= len(raw):
        doc.fragment_texts.extend(_fragments(raw))
        doc.findings.append(
            Finding(
                "unterminated-quote",
                f"the value of {key} opens a quote that is not closed on this line "
                "(python-dotenv then swallows the lines that follow)",
                "close the quote on the same line (multi-line value: \\n inside double quotes)",
                key=key,
                line=number,
            )
        )
        return EnvLine(number, text)
    tail = raw[i + 1 :]
    if tail.strip() and not tail.lstrip(" \t").startswith("#"):
        doc.fragment_texts.extend(_fragments(raw))
        doc.findings.append(
            _syntax(
                number,
                f"has text after the closing quote of {key}",
                "remove it or quote the whole value",
                key,
            )
        )
        return EnvLine(number, text)
    value = ESCAPES[quote].sub(lambda m: codecs.decode(m.group(), "unicode-escape"), raw[1:i])
    return EnvLine(number, text, key, value, prefix, tail, quote, raw[1:i])


def _fragments(text: str) -> list[str]:
    """Pieces of a malformed line that could be a secret, for the redactor to learn.

    The whole text, the part after '=', and every longer word but a leading variable name.
    """
    pieces = [text.strip()]
    if "=" in text:
        pieces.append(text.split("=", 1)[1].strip().strip("'\""))
    words = [w for w in re.split(r"[\s'\"=]+", text) if w]
    if words and ENV_NAME.fullmatch(words[0]):
        words.pop(0)
    pieces += [w for w in words if len(w) >= MIN_WORD]
    return [p for p in pieces if p]


def _syntax(number: int, problem: str, fix: str, key: str = "") -> Finding:
    return Finding("syntax", f"line {number} {problem}", fix, key=key, line=number)


def read(path: Path) -> EnvDocument:
    """Parse the env file at ``path``; a missing or unreadable file is an operator error."""
    if not path.is_file():
        raise OperatorError(
            f"env file {path} not found",
            "create it from its example: invoke env.init --env NAME, then fill in the values",
        )
    try:
        return parse(path.read_bytes())
    except OSError as exc:
        raise OperatorError(
            f"cannot read env file {path}: {exc.strerror}", "check its permissions"
        ) from None


def write(host: Host, path: str, doc: EnvDocument) -> None:
    """Write atomically with mode 0600: comments, order and unknown lines are kept."""
    host.write_file(path, doc.render().encode("utf-8"), mode=ENV_FILE_MODE)


def update(host: Host, path: str, values: Mapping[str, str]) -> EnvDocument:
    """Set some keys in an existing env file on ``host``, keeping everything else."""
    doc = parse(host.read_file(path))
    for key, value in values.items():
        doc = doc.set(key, value)
    write(host, path, doc)
    return doc


def load_values(path: Path) -> dict[str, str]:
    """The env file's values (``None`` values, i.e. bare keys, become empty strings)."""
    if not path.is_file():
        raise OperatorError(
            f"env file {path} not found",
            "create it from its example (invoke env.init --env NAME) and fill in the values",
        )
    try:
        return parse_values(path.read_bytes())
    except (OSError, UnicodeDecodeError) as exc:
        raise OperatorError(
            f"cannot read env file {path}: {exc}", "check its permissions and encoding"
        ) from None


def parse_values(data: bytes) -> dict[str, str]:
    """What python-dotenv reads from env file bytes, never interpolated: the one reading of an
    env file that deploytools, the host tools and (through a derived copy) compose all share."""
    import io

    from dotenv import dotenv_values

    text = io.StringIO(data.decode("utf-8"), newline=None)  # as open() reads: \r\n -> \n
    raw = dotenv_values(stream=text, interpolate=False)
    return {k: v or "" for k, v in raw.items()}
