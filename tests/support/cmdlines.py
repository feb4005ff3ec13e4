"""Watch every command line on this machine (``/proc/*/cmdline``) for a secret, in a thread.

The simulated SSH hosts are this machine, so what a remote ``ps`` would show is here too. A
short-lived process can slip between two samples: tests keep the processes they watch alive
for longer than a sample takes (a few ms), and check with a control that the watch sees one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.secretforms import forms

PAUSE = 0.002  # seconds between two passes over /proc


def encodings(secret: str) -> list[bytes]:
    """The forms a secret could take on its way into a command line (``secretforms.forms``)."""
    return [form.encode() for form in forms(secret).values()]


@dataclass
class Seen:
    """Each command line (NULs as spaces) in which a form of a secret appeared, and how many
    passes over /proc were made."""

    lines: list[str] = field(default_factory=list)
    passes: int = 0


@contextmanager
def watch_cmdlines(secrets: list[str]) -> Iterator[Seen]:
    """Sample every command line until the block ends, looking for any form of ``secrets``."""
    needles = [form for secret in secrets for form in encodings(secret)]
    seen = Seen()
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(PAUSE):
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue  # gone meanwhile
                if any(needle in cmdline for needle in needles):
                    seen.lines.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
            seen.passes += 1

    thread = threading.Thread(target=watch, name="cmdline-watch", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(10)
