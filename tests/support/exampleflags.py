"""The example app's flag, as the flag tests set it and ask for it: the state file written as
``flags.set`` writes it (rendered, renamed over the old one), GET /checkout, and a bounded poll
for a running app to see a rewrite."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from deploytools.flags import state
from deploytools.flags.state import FlagState

FLAG = "new_checkout"
SEEN_WITHIN = 5.0  # s: the client looks every 200 ms; the rest is slack for a loaded machine


def set_flag(path: Path, percent: int) -> None:
    """Replace the state file atomically with ``FLAG`` at ``percent`` (mode 0644: the app's
    user, uid 10001 in the image, reads it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    rendered = state.render(FlagState().changed({FLAG: percent}, by="t", at="t", stage=None))
    tmp.write_bytes(rendered)
    tmp.chmod(0o644)
    os.replace(tmp, path)


def checkout(base_url: str, user: str) -> str:
    """The checkout GET /checkout gives ``user``."""
    response = httpx.get(f"{base_url}/checkout", params={"user": user}, timeout=10.0)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"] == user and body["flag"] == FLAG
    return str(body["checkout"])


def wait_for(answer: Callable[[], str], expected: str) -> float:
    """Poll ``answer`` until it is ``expected`` (at most SEEN_WITHIN s); the seconds it took."""
    started = time.monotonic()
    while (found := answer()) != expected:
        assert time.monotonic() - started < SEEN_WITHIN, f"still {found!r} after {SEEN_WITHIN}s"
        time.sleep(0.02)
    return time.monotonic() - started
