"""Watch every command line on this machine (``/proc/*/cmdline``) for a secret, in a thread.

The simulated SSH hosts are this machine, so what a remote ``ps`` would show is here too. A
short-lived process can slip between two samples: tests keep the processes they watch alive
for longer than a sample takes (a few ms), and check with a control that the watch sees one.
``hosted_by`` names the processes a simulated host runs (the host side of a remote command):
those with an ancestor whose command line holds it (their sshd's config path), counted apart
for that control.
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
    """Each command line (NULs as spaces) in which a form of a secret appeared, how many
    passes over /proc were made, and the command lines seen under ``hosted_by``."""

    lines: list[str] = field(default_factory=list)
    passes: int = 0
    hosted: set[str] = field(default_factory=set)


@contextmanager
def watch_cmdlines(secrets: list[str], *, hosted_by: str = "") -> Iterator[Seen]:
    """Sample every command line until the block ends, looking for any form of ``secrets``."""
    needles = [form for secret in secrets for form in encodings(secret)]
    seen = Seen()
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(PAUSE):
            cmdlines: dict[str, bytes] = {}
            parents: dict[str, str] = {}
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                    if hosted_by:
                        parents[entry.name] = (entry / "stat").read_text().rpartition(")")[2]
                except OSError:
                    continue  # gone meanwhile
                cmdlines[entry.name] = cmdline
                if any(needle in cmdline for needle in needles):
                    seen.lines.append(_text(cmdline))
            if hosted_by:
                seen.hosted |= _hosted(cmdlines, parents, hosted_by.encode())
            seen.passes += 1

    thread = threading.Thread(target=watch, name="cmdline-watch", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(10)


def _text(cmdline: bytes) -> str:
    return cmdline.replace(b"\0", b" ").decode(errors="replace")


def _hosted(cmdlines: dict[str, bytes], stats: dict[str, str], mark: bytes) -> set[str]:
    """The command lines of processes with an ancestor whose command line holds ``mark``
    (``stats``: what follows the name in each /proc/PID/stat, its parent's pid second)."""
    parent = {pid: stat.split()[1] for pid, stat in stats.items()}
    found = set()
    for pid, cmdline in cmdlines.items():
        up, hops = parent.get(pid), 0
        while up and up in cmdlines and hops < 64:
            if mark in cmdlines[up]:
                found.add(_text(cmdline))
                break
            up, hops = parent.get(up), hops + 1
    return found
