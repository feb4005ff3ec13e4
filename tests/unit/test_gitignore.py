"""deploytools' state and backup directories keep themselves out of the project's git."""

from __future__ import annotations

from deploytools import db
from deploytools.db.store import BackupStore
from deploytools.gitignore import IGNORE_ALL
from deploytools.site.journal import Journal
from deploytools.testing import MemoryHost
from tests.support.backups import journal_for
from tests.support.dbhost import BACKUPS, quiet_ui, settings


def test_the_first_record_marks_the_state_directory_ignored_once() -> None:
    host = MemoryHost()
    Journal(host, "/app/.deploytools/prod").append("step.start", step="lock")
    assert host.files["/app/.deploytools/prod/.gitignore"] == IGNORE_ALL

    host.files["/app/.deploytools/prod/.gitignore"] = b"*\n!journal.jsonl\n"  # the team's own
    Journal(host, "/app/.deploytools/prod").append("step.start", step="lock")
    assert host.files["/app/.deploytools/prod/.gitignore"] == b"*\n!journal.jsonl\n"


def test_the_backup_directory_is_ignored_and_its_mark_is_no_leftover() -> None:
    host = MemoryHost("mem")
    BackupStore(settings(), host).prepare()
    assert host.files[f"{BACKUPS}/.gitignore"] == IGNORE_ALL

    assert db.list_backups(settings(), host).leftovers == []
    db.prune(settings(retention=1), host, quiet_ui(), journal_for(settings(retention=1), host))
    assert host.listdir(BACKUPS) == [".gitignore"]


def test_a_journal_makes_its_directory_once_per_run_not_per_record() -> None:
    """Each look at the directory is a round trip when the journal is on an SSH host."""

    class Counting(MemoryHost):
        made = 0

        def makedirs(self, path: str, mode: int = 0o755) -> None:
            self.made += 1
            super().makedirs(path, mode)

    host = Counting()
    journal = Journal(host, "/app/.deploytools/prod")
    for step in ("lock", "backup", "migrate"):
        journal.append("step.start", step=step)
    assert host.made == 1
    assert [r["step"] for r in journal.records()] == ["lock", "backup", "migrate"]
