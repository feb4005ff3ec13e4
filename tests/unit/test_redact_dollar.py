"""A secret with ``$`` is masked also in the pieces docker compose cuts it into.

Compose reading such a value unescaped (an operator's own compose call, or a file an older
deploytools passed on) warns ``The "<rest>" variable is not set`` on every command and keeps
only the text before the ``$``: 24 of a password's 28 characters reached the terminal, the
journal and ``stack.logs``.
"""

from __future__ import annotations

import json

from deploytools.redact import Redactor

PASSWORD = "kW2m$Tq9vLz4Xc8Rb1Hn6Yd3Pf7Js"
WARNING = 'time="2026-01-01T00:00:00Z" level=warning msg="The \\"{}\\" variable is not set. '


def test_the_variable_compose_names_and_the_part_it_keeps_are_masked() -> None:
    redact = Redactor()
    redact.learn_env({"DATABASE_URL": f"postgresql://app:{PASSWORD}@db:5432/app"})
    line = WARNING.format("Tq9vLz4Xc8Rb1Hn6Yd3Pf7Js") + "Defaulting to a blank string."
    assert "Tq9v" not in redact(line)
    assert redact(line).startswith('time="2026-01-01T00:00:00Z" level=warning msg="The \\"***\\"')
    assert redact("password for app: kW2m (from the DSN)") == "password for app: *** (from the DSN)"
    journal = redact.dumps({"error": line})
    assert "Tq9v" not in journal and json.loads(journal)["error"].count("***") == 1


def test_braced_and_repeated_dollars_leave_no_piece_behind() -> None:
    secret = "Qw7Rt9Zx${Hm4Kp}-ab8Cd$$Ef5Gh6"
    redact = Redactor([secret])
    for shown in ("Qw7Rt9Zx", "Hm4Kp", "Ef5Gh6", "{Hm4Kp}-ab8Cd"):
        assert shown not in redact(f"compose said: {shown}."), shown
    assert redact("Qw7Rt9Zx-ab8Cd$Ef5Gh6") == "***"  # what compose keeps of it


def test_a_secret_url_keeps_its_host_and_database_readable() -> None:
    redact = Redactor()
    url = "postgresql://app:kW2m$Tq9vLz4Xc8Rb@db.internal:5432/shop"
    redact.learn_env({"DATABASE_URL": url}, ["DATABASE_URL"])
    assert redact("backing up postgresql://app@db.internal:5432/shop") == (
        "backing up postgresql://app@db.internal:5432/shop"
    )
    masked = "postgresql://app:***@db.internal:5432/shop"
    assert redact(url) == masked
    assert redact("postgresql://app:kW2m@db.internal:5432/shop") == masked  # compose's reading
    assert redact('The "Tq9vLz4Xc8Rb" variable is not set') == 'The "***" variable is not set'


def test_short_pieces_are_masked_as_whole_words_only() -> None:
    redact = Redactor(["ab$Xy9"])
    assert redact('The "Xy9" variable is not set') == 'The "***" variable is not set'
    assert redact("Xy99 and Xy9z stay") == "Xy99 and Xy9z stay"
    assert redact("ab is too short to mask") == "ab is too short to mask"
