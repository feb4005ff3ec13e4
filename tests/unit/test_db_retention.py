"""Retention decides from manifests and release records alone: a pure function, tested as such."""

from __future__ import annotations

import json
from typing import Any

from deploytools import db
from deploytools.db.manifest import Manifest
from deploytools.db.retention import plan_retention
from deploytools.testing import MemoryHost
from tests.support.backups import journal_for, number_of, numbered_backup
from tests.support.dbhost import BACKUPS, quiet_ui, settings

JOURNAL = "/srv/app/.deploytools/test/journal.jsonl"


def backup(n: int, verified: bool = True) -> Manifest:
    return numbered_backup("test", n, verified=verified)


def nums(manifests: list[Manifest] | dict[str, str]) -> list[int]:
    """The number of each backup, in order (ids of a keep dict: sorted)."""
    found = sorted(manifests) if isinstance(manifests, dict) else [m.id for m in manifests]
    return [number_of(i) for i in found]


def release(
    tag: str, n: int | None, result: str = "ok", action: str = "deploy", **extra: Any
) -> dict[str, Any]:
    """A release record as the journal keeps it, recording backup ``n`` (or none)."""
    recorded = backup(n).id if n is not None else None
    fields = {"tag": tag, "action": action, "result": result, "backup": recorded}
    return {"kind": "release", **fields, **extra}


def test_keeps_the_newest_n_verified_and_deletes_the_rest() -> None:
    keep, delete = plan_retention([backup(n) for n in range(1, 6)], [], retention=2)
    assert nums(keep) == [4, 5]
    assert keep[backup(5).id] == "newest verified"
    assert nums(delete) == [1, 2, 3]


def test_unverified_backups_never_count_and_are_deleted() -> None:
    backups = [backup(1), backup(2), backup(3, verified=False), backup(4, verified=False)]
    keep, delete = plan_retention(backups, [], retention=2)
    assert nums(keep) == [1, 2]
    assert nums(delete) == [3, 4]


def test_the_backup_of_a_good_release_is_kept_whatever_its_age() -> None:
    backups = [backup(n) for n in range(1, 5)]
    keep, delete = plan_retention(backups, [release("v1", 1), release("v0", 99)], retention=2)
    assert keep[backup(1).id] == "recorded with deploy v1, one of the last 2 good releases"
    assert nums(keep) == [1, 3, 4] and nums(delete) == [2]


def test_fifty_failed_deploys_pin_nothing() -> None:
    """Each failed deploy took a backup; only the newest 7 and the good releases' are kept."""
    good = [release(f"good{n}", n) for n in (1, 2, 3)]
    failed = [release(f"bad{n}", n, result="failed") for n in range(10, 60)]
    backups = [backup(n) for n in (1, 2, 3, *range(10, 60))]
    keep, delete = plan_retention(backups, [*good, *failed], retention=7)
    assert nums(keep) == [1, 2, 3, *range(53, 60)]
    assert len(delete) == 43 and nums(delete) == list(range(10, 53))


def test_only_the_last_n_good_releases_pin_their_backups() -> None:
    releases = [release(f"v{n}", n) for n in range(1, 11)]  # backups 1..10, all good
    releases.insert(5, release("broken", 11, result="failed"))
    backups = [backup(n) for n in range(1, 12)] + [backup(n) for n in range(20, 24)]
    keep, delete = plan_retention(backups, releases, retention=3)
    # newest 3 verified: 21, 22, 23; last 3 good releases: v8, v9, v10
    assert nums(keep) == [8, 9, 10, 21, 22, 23]
    assert nums(delete) == [1, 2, 3, 4, 5, 6, 7, 11, 20]


def test_a_good_rollback_pins_its_target_backup_and_its_safety_backup() -> None:
    releases = [
        release("v1", 1),
        release("v2", 2),
        release("v3", 3),
        release("v1", 1, action="rollback", safety_backup=backup(4).id),
        release("v4", None),  # a deploy with nothing to back up yet pins nothing
    ]
    backups = [backup(n) for n in range(1, 8)]
    keep, delete = plan_retention(backups, releases, retention=2)
    assert keep[backup(1).id] == "recorded with rollback v1, one of the last 2 good releases"
    assert keep[backup(4).id] == "safety backup of rollback v1, one of the last 2 good releases"
    assert nums(keep) == [1, 4, 6, 7] and nums(delete) == [2, 3, 5]


def test_a_failed_rollback_pins_nothing() -> None:
    releases = [
        release("v1", 1),
        release("v2", 2),
        release("v1", 1, result="failed", action="rollback", safety_backup=backup(3).id),
    ]
    keep, delete = plan_retention([backup(n) for n in range(1, 6)], releases, retention=1)
    assert nums(keep) == [2, 5] and nums(delete) == [1, 3, 4]


def test_the_last_verified_backup_survives_even_a_zero_retention() -> None:
    backups = [backup(1), backup(2, verified=False)]
    keep, delete = plan_retention(backups, [release("v1", 2)], retention=0)
    assert list(keep) == [backup(1).id]
    assert nums(delete) == [2]


def store(host: MemoryHost, *manifests: Manifest) -> None:
    for m in manifests:
        host.files[f"{BACKUPS}/{m.id}.json"] = m.to_json()
        host.files[f"{BACKUPS}/{m.archive}"] = b"x"


def record(host: MemoryHost, *releases: dict[str, Any]) -> None:
    host.files[JOURNAL] = "".join(json.dumps(r) + "\n" for r in releases).encode()


def test_prune_removes_old_backups_broken_ones_and_leftovers_but_not_damaged_manifests() -> None:
    host = MemoryHost("mem")
    store(host, *(backup(n) for n in range(1, 4)))
    host.files[f"{BACKUPS}/{backup(4).id}.json"] = backup(4).to_json()  # archive gone
    host.files[f"{BACKUPS}/.{backup(5).id}.dump.partial"] = b"half"
    host.files[f"{BACKUPS}/{backup(6).id}.json"] = b"{not json"
    host.files[f"{BACKUPS}/{backup(6).id}.dump"] = b"x"
    record(host, release("v1", 1))

    dry = db.prune(
        settings(retention=1),
        host,
        quiet_ui(),
        journal_for(settings(retention=1), host),
        dry_run=True,
    )
    assert nums(dry.delete) == [2, 4]
    assert dry.leftovers == [f".{backup(5).id}.dump.partial"]
    assert len(host.listdir(BACKUPS)) == 10  # the dry run changed nothing

    db.prune(settings(retention=1), host, quiet_ui(), journal_for(settings(retention=1), host))
    assert host.listdir(BACKUPS) == [
        f"{backup(1).id}.dump",
        f"{backup(1).id}.json",
        f"{backup(3).id}.dump",
        f"{backup(3).id}.json",
        f"{backup(6).id}.dump",
        f"{backup(6).id}.json",
    ]
    contents = db.list_backups(settings(), host)
    assert contents.damaged == [f"{backup(6).id}.json"] and contents.leftovers == []


def test_prune_deletes_the_backups_of_failed_deploys_beyond_retention() -> None:
    host = MemoryHost("mem")
    store(host, backup(1), *(backup(n) for n in range(10, 60)))
    record(host, release("good", 1), *(release(f"bad{n}", n, "failed") for n in range(10, 60)))
    plan = db.prune(
        settings(retention=7), host, quiet_ui(), journal_for(settings(retention=7), host)
    )
    assert nums(plan.keep) == [1, *range(53, 60)]
    assert len(host.listdir(BACKUPS)) == 2 * 8
