"""Retention decides from manifests and release records alone: a pure function, tested as such."""

from __future__ import annotations

import io
import json

from deploytools import db
from deploytools.db.manifest import Manifest
from deploytools.db.retention import plan_retention
from deploytools.ui import Ui
from tests.support.dbhost import BACKUPS, settings
from tests.support.memhost import MemoryHost


def backup(n: int, verified: bool = True) -> Manifest:
    return Manifest(
        id=f"test-2025010{n}T000000Z",
        env="test",
        engine="postgresql",
        format="custom",
        archive=f"test-2025010{n}T000000Z.dump",
        database="app",
        server_version="15",
        alembic_revision="0003",
        size=1,
        sha256="0" * 64,
        created_at=f"2025-01-0{n}T00:00:00Z",
        duration_s=1.0,
        verified=verified,
    )


def ids(manifests: list[Manifest]) -> list[str]:
    return [m.id[5:14] for m in manifests]  # the date part, e.g. 20250103T


def test_keeps_the_newest_n_verified_and_deletes_the_rest() -> None:
    keep, delete = plan_retention([backup(n) for n in range(1, 6)], keep_newest=2, referenced=set())
    assert sorted(keep) == [backup(4).id, backup(5).id]
    assert keep[backup(5).id] == "newest verified"
    assert ids(delete) == ["20250101T", "20250102T", "20250103T"]


def test_unverified_backups_never_count_and_are_deleted() -> None:
    backups = [backup(1), backup(2), backup(3, verified=False), backup(4, verified=False)]
    keep, delete = plan_retention(backups, keep_newest=2, referenced=set())
    assert sorted(keep) == [backup(1).id, backup(2).id]
    assert ids(delete) == ["20250103T", "20250104T"]


def test_a_backup_a_release_refers_to_is_kept_whatever_its_age() -> None:
    backups = [backup(n) for n in range(1, 5)]
    keep, delete = plan_retention(backups, keep_newest=1, referenced={backup(1).id, "gone-id"})
    assert keep[backup(1).id] == "a recorded release refers to it"
    assert ids(delete) == ["20250102T", "20250103T"]


def test_the_last_verified_backup_survives_even_a_zero_retention() -> None:
    backups = [backup(1), backup(2, verified=False)]
    keep, delete = plan_retention(backups, keep_newest=0, referenced=set())
    assert list(keep) == [backup(1).id]
    assert ids(delete) == ["20250102T"]


def store(host: MemoryHost, *manifests: Manifest) -> None:
    for m in manifests:
        host.files[f"{BACKUPS}/{m.id}.json"] = m.to_json()
        host.files[f"{BACKUPS}/{m.archive}"] = b"x"


def test_prune_removes_old_backups_broken_ones_and_leftovers_but_not_damaged_manifests() -> None:
    host = MemoryHost("mem")
    store(host, *(backup(n) for n in range(1, 4)))
    host.files[f"{BACKUPS}/test-20250104T000000Z.json"] = backup(4).to_json()  # archive gone
    host.files[f"{BACKUPS}/.test-20250105T000000Z.dump.partial"] = b"half"
    host.files[f"{BACKUPS}/test-20250106T000000Z.json"] = b"{not json"
    host.files[f"{BACKUPS}/test-20250106T000000Z.dump"] = b"x"
    host.files["/srv/app/.deploytools/test/journal.jsonl"] = (
        json.dumps({"kind": "release", "tag": "v1", "backup": backup(1).id}) + "\n"
    ).encode()
    ui = Ui(stderr=io.StringIO(), stdout=io.StringIO())

    dry = db.prune(settings(retention=1), host, ui, dry_run=True)
    assert ids(dry.delete) == ["20250102T", "20250104T"]
    assert dry.leftovers == [".test-20250105T000000Z.dump.partial"]
    assert len(host.listdir(BACKUPS)) == 10  # the dry run changed nothing

    db.prune(settings(retention=1), host, ui)
    assert host.listdir(BACKUPS) == [
        f"{backup(1).id}.dump",
        f"{backup(1).id}.json",
        f"{backup(3).id}.dump",
        f"{backup(3).id}.json",
        "test-20250106T000000Z.dump",
        "test-20250106T000000Z.json",
    ]
    contents = db.list_backups(settings(), host)
    assert contents.damaged == ["test-20250106T000000Z.json"] and contents.leftovers == []
