"""Retention: which backups to keep, decided by a pure function, then done (or only shown).

With N = ``database.retention``, kept: the newest N *verified* backups, and the backups the
last N good releases (deploys and rollbacks that ended ``ok``) recorded: a deploy's backup
(taken before it migrated) and a rollback's backups (the one of the release it went back to,
and the safety backup it took before changing the database, which holds the data the
rollback replaced). A failed deploy or rollback pins nothing: its backup counts only among the
newest N. Deleted: everything else, including unverified backups and leftovers of
interrupted runs. The newest verified backup is never deleted, whatever the settings say.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from deploytools.config import EnvironmentSettings
from deploytools.db.manifest import Manifest
from deploytools.db.store import BackupStore
from deploytools.hosts.base import Host
from deploytools.release import good_releases
from deploytools.site.journal import Journal
from deploytools.ui import Ui


@dataclass(frozen=True)
class PrunePlan:
    keep: dict[str, str]  # backup id -> why it is kept
    delete: list[Manifest]  # unneeded backups, oldest first
    leftovers: list[str] = field(default_factory=list)  # names of no backup (interrupted runs)
    damaged: list[str] = field(default_factory=list)  # unreadable manifests: left for a human


def plan_retention(
    backups: Iterable[Manifest], releases: list[dict[str, Any]], *, retention: int
) -> tuple[dict[str, str], list[Manifest]]:
    """``(keep: id -> reason, delete)`` for backups and release records given oldest first."""
    backups = list(backups)
    verified = [b for b in reversed(backups) if b.verified]
    keep: dict[str, str] = {}
    for backup in verified[: max(retention, 1)]:
        keep[backup.id] = (
            "newest verified" if backup is verified[0] else f"among the newest {retention} verified"
        )
    pinned = pinned_backups(releases, retention)
    for backup in backups:
        if backup.id in pinned:
            keep.setdefault(backup.id, pinned[backup.id])
    delete = [b for b in backups if b.id not in keep]
    assert not verified or verified[0] not in delete
    return keep, delete


def pinned_backups(releases: list[dict[str, Any]], last: int) -> dict[str, str]:
    """Backup id -> why, for the backups that the ``last`` good releases recorded."""
    recent = good_releases(releases)[-last:] if last > 0 else []
    pinned: dict[str, str] = {}
    for record in reversed(recent):
        release = f"{record.get('action', 'deploy')} {record.get('tag')}"
        among = f"one of the last {last} good releases"
        if record.get("backup"):
            pinned.setdefault(str(record["backup"]), f"recorded with {release}, {among}")
        if record.get("safety_backup"):
            pinned.setdefault(str(record["safety_backup"]), f"safety backup of {release}, {among}")
    return pinned


def plan_prune(settings: EnvironmentSettings, host: Host, journal: Journal) -> PrunePlan:
    """What retention keeps and removes, against the releases ``journal`` records."""
    store = BackupStore(settings, host)
    contents = store.scan()
    releases = journal.releases()
    keep, delete = plan_retention(
        contents.backups, releases, retention=settings.database.retention
    )
    doomed = sorted([*contents.broken, *delete], key=lambda m: (m.created_at, m.id))
    return PrunePlan(keep, doomed, contents.leftovers, contents.damaged)


def prune(
    settings: EnvironmentSettings, host: Host, ui: Ui, journal: Journal, *, dry_run: bool = False
) -> PrunePlan:
    """Apply retention on ``host`` (or with ``dry_run`` only say what it would remove)."""
    plan = plan_prune(settings, host, journal)
    store = BackupStore(settings, host)
    verb = "would remove" if dry_run else "removing"
    for manifest in plan.delete:
        ui.info(f"{verb} backup {manifest.id} ({manifest.created_at})")
        if not dry_run:
            store.delete(manifest)
    for name in plan.leftovers:
        ui.info(f"{verb} leftover {name} (from an interrupted run)")
        if not dry_run:
            store.remove(name)
    for name in plan.damaged:
        ui.warn(f"manifest {name} is unreadable: left in place, check it by hand")
    if (plan.delete or plan.leftovers) and not dry_run:
        journal.append(
            "db.prune",
            removed=[m.id for m in plan.delete],
            leftovers=plan.leftovers,
            kept=sorted(plan.keep),
        )
    done = "would remove" if dry_run else "removed"
    ui.success(
        f"retention: {len(plan.keep)} backup(s) kept; {done} {len(plan.delete)} backup(s)"
        f" and {len(plan.leftovers)} leftover(s)"
    )
    return plan
