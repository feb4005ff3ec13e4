"""The forms a secret takes in output, built from the encoders that produce them.

Tests scan outputs for every one of them; they are built here by hand, not taken from the
redactor's own list, so that a form the redactor forgets fails a test.
"""

from __future__ import annotations

import json
import re
import shlex
from urllib.parse import quote, quote_plus


def json_inner(text: str, ensure_ascii: bool = True) -> str:
    """``text`` as inside a JSON string (no surrounding quotes)."""
    return json.dumps(text, ensure_ascii=ensure_ascii)[1:-1]


def forms(secret: str) -> dict[str, str]:
    """Name -> the secret in that form (forms that coincide for this secret appear once)."""
    found = {
        "raw": secret,
        "json": json_inner(secret),
        "json, non-ASCII kept": json_inner(secret, ensure_ascii=False),
        "json inside json": json_inner(json_inner(secret)),
        "json (non-ASCII kept) inside json": json_inner(json_inner(secret, ensure_ascii=False)),
        "url quote": quote(secret),
        "url quote, no safe character": quote(secret, safe=""),
        "url quote_plus": quote_plus(secret),
        "url, lower-case hex": re.sub(
            r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(secret, safe="")
        ),
        "shell": shlex.quote(secret),
        "repr": repr(secret)[1:-1],
        "ascii": ascii(secret)[1:-1],
        "repr of its UTF-8 bytes": repr(secret.encode())[2:-1],
    }
    unique: dict[str, str] = {}
    for name, form in found.items():
        if form not in unique.values():
            unique[name] = form
    return unique


def leaked(secret: str, text: str) -> list[str]:
    """The names of the forms of ``secret`` found in ``text``."""
    return [name for name, form in forms(secret).items() if form in text]
