"""Short secrets are masked as whole words only, so messages stay readable and give no hint."""

from __future__ import annotations

from deploytools.redact import Redactor


def test_short_secret_is_masked_as_a_word_not_inside_longer_words() -> None:
    redact = Redactor(["short"])
    assert redact("SECRET_KEY is shorter than 32") == "SECRET_KEY is shorter than 32"
    assert redact("value=short, again 'short'") == "value=***, again '***'"


def test_long_secret_is_masked_anywhere() -> None:
    redact = Redactor(["Zq8vN3rLk5wT1yXb"])
    assert redact("xZq8vN3rLk5wT1yXbx") == "x***x"
