"""A secret is masked in every form our outputs give it, not only as it was written.

The secret holds what makes each encoder differ: ``"``, ``\\``, ``'``, ``${``, ``/``, a space and
a non-ASCII letter (an env file may not hold one in a secret, but a URL password decoded or a
secret the redactor is given may). Its forms come from ``tests.support.secretforms``.
"""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from deploytools.redact import MASK, Redactor
from deploytools.site.journal import Journal
from deploytools.testing import MemoryHost
from deploytools.ui import Ui
from tests.support.secretforms import forms, json_inner, leaked

SECRET = "Qw7\"Rt\\9'Zx${Hm4}/Kp2-ö Vb8nLc5"
FORMS = forms(SECRET)


def test_the_secret_takes_every_form_apart() -> None:
    assert len(FORMS) == 13


@pytest.mark.parametrize("name", list(FORMS))
def test_every_form_of_a_learned_secret_is_masked(name: str) -> None:
    redact = Redactor([SECRET])
    assert redact(f"got <{FORMS[name]}> back") == f"got <{MASK}> back"


def test_a_json_body_with_the_secret_stays_out_of_journal_and_json_output() -> None:
    """The reported leak: an HTTP body (JSON) quoted in an error, the error journaled."""
    redact = Redactor([SECRET])
    body = json.dumps({"detail": SECRET}, ensure_ascii=False)
    error = f"backend not healthy: HTTP 503 (expected 200): {body}"
    host = MemoryHost()
    journal = Journal(host, "/state", redact)
    returned = journal.append("step.failed", step="wait healthy", error=error)
    out = io.StringIO()
    Ui(redactor=redact, stdout=out, stderr=io.StringIO()).emit_json(journal.records())

    line = host.files["/state/journal.jsonl"].decode()
    for text in (line, out.getvalue(), str(returned), redact(error)):
        assert leaked(SECRET, text) == [], text
    masked = f'backend not healthy: HTTP 503 (expected 200): {{"detail": "{MASK}"}}'
    assert json.loads(line)["error"] == masked


def test_keys_and_values_json_cannot_hold_are_masked_too() -> None:
    redact = Redactor([SECRET])
    host = MemoryHost()
    Journal(host, "/state", redact).append("note", where=Path(f"/srv/{SECRET}"), **{SECRET: 1})
    out = io.StringIO()
    Ui(redactor=redact, stdout=out, stderr=io.StringIO()).emit_json({SECRET: Path(SECRET)})

    for text in (host.files["/state/journal.jsonl"].decode(), out.getvalue()):
        assert leaked(SECRET, text) == []
    assert json.loads(out.getvalue()) == {MASK: MASK}


def test_json_text_stays_valid_when_only_its_escapes_look_like_a_secret() -> None:
    """A newline before "abc..." is written ``\\nabc...``: that is not the secret "nabc..."."""
    redact = Redactor(["nabcdefgh12"])
    host = MemoryHost()
    Journal(host, "/state", redact).append("note", text="line\nabcdefgh12")
    assert Journal(host, "/state").records()[0]["text"] == "line\nabcdefgh12"


def test_a_url_password_is_masked_as_written_and_decoded() -> None:
    redact = Redactor()
    redact.learn_env({"DATABASE_URL": "postgresql://app:S3cr%2Ft%40pw-Long9@db/app"})
    assert redact("auth failed for S3cr/t@pw-Long9 (S3cr%2Ft%40pw-Long9)") == (
        f"auth failed for {MASK} ({MASK})"
    )


def test_a_short_secret_is_masked_as_a_word_in_its_encodings_too() -> None:
    redact = Redactor(['a"b1'])
    assert redact('x a\\"b1 y') == f"x {MASK} y"
    assert redact('xa\\"b1y') == 'xa\\"b1y'


def test_a_secret_learned_after_use_is_masked() -> None:
    redact = Redactor(["Zq8vN3rLk5wT1yXb"])
    assert redact("a Zq8vN3rLk5wT1yXb b") == f"a {MASK} b"
    redact.add(SECRET)
    assert redact(f"{json_inner(SECRET)} Zq8vN3rLk5wT1yXb") == f"{MASK} {MASK}"


def test_the_longest_form_wins_where_forms_overlap() -> None:
    """The JSON form of a secret ending in a backslash is masked whole, never half an escape."""
    secret = "Trailing-backslash-9\\"
    redact = Redactor([secret])
    text = json.dumps({"v": secret + '"'})
    assert redact(text) == '{"v": "***\\""}'
    assert json.loads(redact(text)) == {"v": MASK + '"'}


@pytest.mark.parametrize(
    "shown",
    [
        lambda s: shlex.join(["--password=" + s]),  # a dry run's command line
        lambda s: repr('said "no" to ' + s),  # a repr that holds both kinds of quotes
        lambda s: repr("it's " + s),
        lambda s: repr({"password": s, "note": "it's"}),
    ],
)
def test_a_secret_inside_a_longer_quoted_word_is_masked(shown: Any) -> None:
    secret = "Pa'ss\"wo\\rd-x9Zq"
    assert "x9Zq" not in Redactor([secret])(shown(secret))
