"""A host's own journal: written beside the site's without ever failing the run; merged with
the site's into one history."""

from __future__ import annotations

import io
import json
from pathlib import Path

from deploytools.errors import DeployFailure
from deploytools.site import Site
from deploytools.site.journal import merged
from deploytools.testing import MemoryHost, settings_for
from deploytools.ui import Ui

HOSTS = [
    {"name": "web-1", "address": "10.0.0.1", "primary": True},
    {"name": "web-2", "address": "10.0.0.2"},
]


class Unreachable(MemoryHost):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.tries = 0

    def makedirs(self, path: str, mode: int = 0o755) -> None:
        self.tries += 1
        raise DeployFailure(f"cannot connect to {self.name}: connection refused")


def test_a_host_journal_that_cannot_be_written_is_said_once_and_left_alone(
    tmp_path: Path,
) -> None:
    hosts = {"web-1": MemoryHost("web-1"), "web-2": Unreachable("web-2")}
    err = io.StringIO()
    site = Site(
        settings_for(tmp_path, hosts=HOSTS), Ui(stderr=err, stdout=io.StringIO()),
        control=MemoryHost("control", local=True), connect=lambda conf: hosts[conf.name],
    )  # fmt: skip
    record = site.journal.append("host.step.start", host="web-1", step="start")

    for name in ("web-1", "web-2", "web-2"):
        site.journal_on(name, record)

    own = hosts["web-1"].files[f"{tmp_path}/state/t/host-journal.jsonl"]
    assert [json.loads(line) for line in own.decode().splitlines()] == [record]
    assert hosts["web-2"].tries == 1  # not tried again this run
    assert err.getvalue().count("web-2: its own journal not written") == 1
    assert "connection refused" in err.getvalue()


def test_history_has_each_line_once_by_time_saying_which_journals_have_it() -> None:
    shared = {"at": "2026-01-01T00:00:02Z", "kind": "host.step.done", "host": "h2"}
    site = [{"at": "2026-01-01T00:00:01Z", "kind": "deploy.start"}, shared]
    host = [{"at": "2026-01-01T00:00:00Z", "kind": "host.step.start", "host": "h2"}, shared]

    history = merged({"site": site, "h2": host})

    assert [(r["kind"], r["journals"]) for r in history] == [
        ("host.step.start", ["h2"]),
        ("deploy.start", ["site"]),
        ("host.step.done", ["site", "h2"]),
    ]
