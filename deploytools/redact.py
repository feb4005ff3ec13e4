"""Keep secrets out of every line we print, log or journal.

A value is secret when its key is marked secret by the env rules or matches a secret-looking
name (``*_KEY``, ``*_SECRET``, ``*PASSWORD*``, ``*TOKEN*``), and the password inside any URL is
secret whatever its key. The ``Redactor`` learns the values and masks them wherever they appear.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
SECRET_NAME_PATTERNS = ("*_KEY", "*_SECRET", "*PASSWORD*", "*TOKEN*", "*SECRET_KEY*", "*_DSN")
URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?=@)")
MIN_SECRET_LEN = 3
# A short secret ("short", "admin") is masked only as a whole word: masking it inside longer
# words ("***er than") would garble messages and, worse, let the reader guess it from context.
WHOLE_WORD_BELOW = 8


def is_secret_name(key: str, extra_patterns: Iterable[str] = ()) -> bool:
    upper = key.upper()
    return any(
        fnmatch.fnmatchcase(upper, p.upper()) for p in (*SECRET_NAME_PATTERNS, *extra_patterns)
    )


def url_password(value: str) -> str | None:
    match = URL_PASSWORD.search(value)
    return match.group("pw") if match else None


class Redactor:
    """Masks known secret values and URL passwords in text and nested data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for value in secrets:
            self.add(value)

    def add(self, value: str) -> None:
        if len(value) >= MIN_SECRET_LEN:
            self._secrets.add(value)
        pw = url_password(value)
        if pw and len(pw) >= MIN_SECRET_LEN:
            self._secrets.add(pw)

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
            elif (pw := url_password(value)) and len(pw) >= MIN_SECRET_LEN:
                self._secrets.add(pw)

    def __call__(self, text: str) -> str:
        text = URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret not in text:
                continue
            if len(secret) >= WHOLE_WORD_BELOW:
                text = text.replace(secret, MASK)
            else:
                text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)
        return text

    def data(self, value: Any) -> Any:
        """Redact every string inside JSON-like data (for ``--json`` output and the journal)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value
