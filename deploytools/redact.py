"""Keep secrets out of every line we print, log or journal, in every form they travel in.

A value is secret when its key is marked secret by the env rules or matches a secret-looking
name (``*_KEY``, ``*_SECRET``, ``*PASSWORD*``, ``*TOKEN*``), and the password inside any URL is
secret whatever its key. The ``Redactor`` learns a value once and masks it wherever it appears:
raw, and as our outputs re-encode it on the way (an HTTP body's JSON escapes, then the journal's
JSON around that message; a URL's percent-escapes; shell quoting; Python's repr).

A secret holding ``$`` is also learned in the pieces docker compose cuts it into when it reads
such a value unescaped (an operator's own compose call, a file an older deploytools passed on):
``The "kW2m..." variable is not set`` names the part after a ``$``, and the value compose keeps
is the part before it.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote

MASK = "***"
SECRET_NAME_PATTERNS = ("*_KEY", "*_SECRET", "*PASSWORD*", "*TOKEN*", "*SECRET_KEY*", "*_DSN")
# The scheme starts where no scheme character precedes it and is at most 32 long: a long run
# of letters (a 200 kB value) is then read once, not once per position (quadratic time).
URL_PASSWORD = re.compile(
    r"(?P<head>(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]{0,31}://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?=@)"
)
MIN_SECRET_LEN = 3
# A short secret ("short", "admin") is masked only as a whole word: masking it inside longer
# words ("***er than") would garble messages and, worse, let the reader guess it from context.
WHOLE_WORD_BELOW = 8
WORD_CHAR = "A-Za-z0-9"
WORD_RUN = re.compile(rf"[{WORD_CHAR}]+")
# What follows a ``$`` that compose reads as a variable: ``{name...}`` or a name.
VARIABLE_REFERENCE = re.compile(r"\{(?P<braced>[^}]*)\}?|(?P<name>[A-Za-z0-9_]+)")
# What compose replaces: ``$$`` by ``$``, a variable (unset: empty) by its value.
INTERPOLATION = re.compile(r"\$(?:\$|\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)")
PERCENT_HEX = re.compile(r"%[0-9A-F]{2}")


def is_secret_name(key: str, extra_patterns: Iterable[str] = ()) -> bool:
    upper = key.upper()
    return any(
        fnmatch.fnmatchcase(upper, p.upper()) for p in (*SECRET_NAME_PATTERNS, *extra_patterns)
    )


def url_password(value: str) -> str | None:
    match = URL_PASSWORD.search(value) if "://" in value else None
    return match.group("pw") if match else None


def dollar_fragments(secret: str) -> list[str]:
    """The parts of ``secret`` that compose shows or keeps when it interpolates its ``$``s.

    The text before the first ``$``, and for each ``$`` what follows it up to the next one and
    the variable name compose reads there (inside ``{}`` too, named in its warning); and the
    value compose yields when those variables are not set. Together no longer than three times
    the secret, whatever the number of ``$``s. What follows a name alone is not learned: in a
    secret URL that is its host and database, which compose never shows apart.
    """
    first, *rest = secret.split("$")
    kept = INTERPOLATION.sub(lambda m: "$" if m.group() == "$$" else "", secret)
    fragments = [first, kept]
    for piece in rest:
        fragments.append(piece)
        reference = VARIABLE_REFERENCE.match(piece)
        if reference:
            fragments.append(reference.group("braced") or reference.group("name") or "")
    return [f for f in fragments if f and f != secret]


def encodings(secret: str) -> set[str]:
    """The forms ``secret`` takes in our output, the raw one included.

    JSON without the quotes, ASCII-escaped or not (an app's JSON body), and that inside another
    JSON string (such a body quoted in an error that the journal or ``--json`` encodes again);
    URL escapes, also with lower-case hex; ``shlex.quote``; repr of the text and of its UTF-8.
    Also the forms inside a longer quoted word (``shlex.join(["--password=" + secret])``,
    the repr of a message holding the secret): the quotes escaped, whichever quote the word
    uses.
    """
    forms = {secret, shlex.quote(secret), repr(secret)[1:-1], ascii(secret)[1:-1]}
    forms.add(repr(secret.encode())[2:-1])
    forms.add(secret.replace("'", "'\"'\"'"))  # in a single-quoted shell word
    # In a repr that chose single quotes (the text holds both kinds): ' escaped, " as is.
    in_single = repr(secret + "'\"")[1:-4]
    forms.update({in_single, in_single.replace("\\'", "'")})
    for inner in (True, False):
        once = json.dumps(secret, ensure_ascii=inner)[1:-1]
        forms.add(once)
        forms.update(json.dumps(once, ensure_ascii=outer)[1:-1] for outer in (True, False))
    escaped = {quote(secret), quote(secret, safe=""), quote_plus(secret)}
    forms.update(escaped)
    forms.update(PERCENT_HEX.sub(lambda m: m.group().lower(), form) for form in escaped)
    return forms


class Redactor:
    """Masks known secret values (in all their ``encodings``) and URL passwords.

    Every form of every secret goes into one alternation, longest first, compiled again only
    after a secret was added. Most lines hold no secret, and a regex of many alternatives is
    slow to scan with: each secret's longest run of ASCII letters and digits, which every
    encoding keeps as it is, is looked for first, and only a line holding one is scanned.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._cores: set[str] = set()
        for value in secrets:
            self.add(value)

    def add(self, value: str) -> None:
        self._learn(value)
        if pw := url_password(value):
            self._learn_url_password(pw)

    def learn_env(
        self,
        values: Mapping[str, str | None] | Iterable[tuple[str, str | None]],
        secret_keys: Iterable[str] = (),
    ) -> None:
        """Learn the secret values of an env file: marked keys, secret-looking names, URLs.

        ``values`` may be (key, value) pairs, so that every assignment of a key repeated in a
        malformed file is learned, not only the one a dict keeps.
        """
        marked = set(secret_keys)
        pairs = values.items() if isinstance(values, Mapping) else values
        for key, value in pairs:
            if not value:
                continue
            if key in marked or is_secret_name(key):
                self.add(value)
            elif pw := url_password(value):
                self._learn_url_password(pw)

    def _learn_url_password(self, pw: str) -> None:
        """A URL holds its password percent-escaped: an error may show it decoded."""
        self._learn(pw)
        self._learn(unquote(pw))

    def _learn(self, secret: str) -> None:
        self._learn_one(secret)
        if "$" in secret:
            for fragment in dollar_fragments(secret):
                self._learn_one(fragment)

    def _learn_one(self, secret: str) -> None:
        """Short ones are left out, and those below ``WHOLE_WORD_BELOW`` masked as words."""
        if len(secret) >= MIN_SECRET_LEN and secret not in self._secrets:
            self._secrets.add(secret)
            self._pattern = None

    def _compiled(self) -> re.Pattern[str] | None:
        if self._pattern is None and self._secrets:
            forms = {
                (form, len(secret) < WHOLE_WORD_BELOW)
                for secret in self._secrets
                for form in encodings(secret)
            }
            self._pattern = re.compile(
                "|".join(
                    _whole_word(form) if short else re.escape(form)
                    for form, short in sorted(forms, key=lambda f: (-len(f[0]), f))
                )
            )
            self._cores = {max(WORD_RUN.findall(s) or [""], key=len) for s in self._secrets}
        return self._pattern

    def __call__(self, text: str) -> str:
        if "://" in text:
            text = URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
        pattern = self._compiled()
        if pattern is None or not any(core in text for core in self._cores):
            return text
        return pattern.sub(MASK, text)

    def data(self, value: Any) -> Any:
        """Redact every string inside JSON-like data, keys included."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value

    def dumps(self, value: Any, **options: Any) -> str:
        """JSON text of ``value`` with no secret in it (the journal, ``--json`` output).

        Every string is redacted before encoding (keys, and values JSON has no type for, as
        their ``str``), then the text itself. A mask there that would cut an escape sequence or
        a string in two can only hit text that merely looks like a form of a secret across that
        boundary: the text as encoded is kept then, since each string in it was redacted.
        """
        text = json.dumps(self.data(value), default=lambda o: self(str(o)), **options)
        masked = self(text)
        if masked != text:
            try:
                json.loads(masked)
            except ValueError:
                return text
        return masked


def _whole_word(form: str) -> str:
    return rf"(?<![{WORD_CHAR}]){re.escape(form)}(?![{WORD_CHAR}])"
