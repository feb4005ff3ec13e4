"""Paths from the command line: shell metacharacters and control characters are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploytools.errors import OperatorError
from deploytools.inputs import check_path


@pytest.mark.parametrize(
    "value", ["config/prod.env", "/srv/app/.env", "C:\\deploy\\prod.env", "my env/prod-1.env"]
)
def test_plain_paths_pass(value: str) -> None:
    assert check_path(value) == Path(value)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("prod;rm -rf /", "';'"),
        ("$(x).env", "'$' '(' ')'"),
        ("`id`.env", "'`'"),
        ("a.env\nrm -rf /", "'\\n'"),
        ("a|b", "'|'"),
        ("a&&b", "'&'"),
        ("", "nothing"),
    ],
)
def test_metacharacters_are_named_in_the_message(value: str, shown: str) -> None:
    with pytest.raises(OperatorError) as caught:
        check_path(value, "--file")
    assert caught.value.problem.startswith(f"--file {value!r} is not allowed: it holds {shown}")
    assert caught.value.fix
