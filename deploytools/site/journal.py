"""The append-only journal: JSON Lines of step events and release manifests, per environment.

Each record is one O_APPEND write of one line through the ``Host``, so two runs writing at
once (the deploy that holds the lock and the one refused) never lose each other's lines.
Every record passes the redactor before it is written: its strings, then its JSON text.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from deploytools.gitignore import keep_out_of_git
from deploytools.hosts.base import Host
from deploytools.redact import Redactor

JOURNAL_FILE = "journal.jsonl"
# A host's own journal, beside the site's in its state directory (the primary has both): the
# lines of the per-host steps that ran there, so the host's story survives the site's.
HOST_JOURNAL_FILE = "host-journal.jsonl"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Journal:
    def __init__(
        self,
        host: Host,
        directory: str,
        redactor: Redactor | None = None,
        *,
        file: str = JOURNAL_FILE,
    ) -> None:
        self.host = host
        self.directory = directory
        self.path = f"{directory}/{file}"
        self.redact = redactor or Redactor()
        self.damaged = 0  # lines of the last read that were not a record
        self._ready = False  # the directory and its .gitignore are known to be there
        # Hosts rolled out at once journal from their threads: one line at a time.
        self._writing = threading.Lock()

    def append(self, kind: str, **fields: Any) -> dict[str, Any]:
        return self.write({"at": utc_now(), "kind": kind, **fields})

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append ``record`` with its own time: a line another journal has too, the same."""
        record = self.redact.data(record)
        line = self.redact.dumps(record, sort_keys=True) + "\n"
        with self._writing:
            if not self._ready:  # once per run, not per record (round trips over SSH)
                self.host.makedirs(self.directory)
                keep_out_of_git(self.host, self.directory)
                self._ready = True
            self.host.append_file(self.path, line.encode())
        return dict(record)

    def records(self) -> list[dict[str, Any]]:
        """Every whole record, oldest first; ``damaged`` counts the lines that are not one
        (a torn last line, a disk error, a hand edit): they are skipped, never fatal."""
        if not self.host.exists(self.path):
            return []
        text = self.host.read_file(self.path).decode(errors="replace")
        lines = text.splitlines()
        if lines and not text.endswith("\n"):
            lines.pop()  # a line torn by a crash mid-write: never a whole record
        found, self.damaged = [], 0
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):
                found.append(record)
            else:
                self.damaged += 1
        return found

    def warn_damaged(self, warn: Callable[[str], None]) -> None:
        """Say that the last read skipped lines (so nobody trusts a partial history unseen)."""
        if self.damaged:
            warn(
                f"{self.damaged} damaged journal line(s) skipped in {self.host.name}:{self.path}"
                " (not a whole JSON record)"
            )

    def releases(self) -> list[dict[str, Any]]:
        """Release manifests, oldest first."""
        return [r for r in self.records() if r.get("kind") == "release"]


def merged(journals: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The records of several journals (name -> records, oldest first) as one history, by
    time; a line in several of them (a host's step, in the site's and the host's own) once,
    with ``journals`` naming where it was found."""
    found: dict[str, dict[str, Any]] = {}
    for name, records in journals.items():
        for record in records:
            key = json.dumps(record, sort_keys=True)
            found.setdefault(key, {**record, "journals": []})["journals"].append(name)
    return sorted(found.values(), key=lambda r: str(r.get("at", "")))
