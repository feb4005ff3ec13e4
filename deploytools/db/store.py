"""The backup directory of an environment on a host: manifests, archives and leftovers.

Layout, one directory per environment (``targets.backup_dir``), mode 0700::

    prod-20250101T120000Z.json      the manifest (written last: the backup exists from then on)
    prod-20250101T120000Z.dump      the archive (custom format; ``.dir/`` directory format,
                                    ``.sqlite3`` SQLite), mode 0600
    .prod-20250101T120001Z.dump.partial   a dump in progress, or left by a run that was killed

Anything else without a manifest is a leftover: listed as such, and removed by ``db.prune``;
except the ``.gitignore`` that keeps the directory out of git (``deploytools.gitignore``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from deploytools import targets
from deploytools.config import EnvironmentSettings
from deploytools.db.manifest import MANIFEST_SUFFIX, Manifest, check_id, new_id
from deploytools.errors import OperatorError
from deploytools.gitignore import IGNORE_FILE, keep_out_of_git
from deploytools.hosts.base import Host

PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class Contents:
    backups: list[Manifest]  # oldest first, archive present
    broken: list[Manifest]  # manifest whose archive is gone: not a usable backup
    damaged: list[str]  # manifests that cannot be read: left alone for a human
    leftovers: list[str]  # names that belong to no backup (interrupted runs)


def _order(manifest: Manifest) -> tuple[str, str]:
    return (manifest.created_at, manifest.id)


class BackupStore:
    def __init__(self, settings: EnvironmentSettings, host: Host) -> None:
        self.settings = settings
        self.host = host
        self.directory = targets.backup_dir(settings, host)

    def path(self, name: str) -> str:
        return f"{self.directory}/{name}"

    def prepare(self) -> None:
        """Create the directory owner-only: archives hold every row of the database."""
        self.host.makedirs(self.directory, mode=0o700)
        keep_out_of_git(self.host, self.directory)

    def scan(self) -> Contents:
        """Read the directory once: backups, and whatever else is lying there."""
        names = self.host.listdir(self.directory)
        backups: list[Manifest] = []
        broken: list[Manifest] = []
        damaged: list[str] = []
        for name in names:
            if not name.endswith(MANIFEST_SUFFIX) or name.startswith("."):
                continue
            try:
                manifest = Manifest.from_json(self.host.read_file(self.path(name)), self.path(name))
            except OperatorError:
                damaged.append(name)
                continue
            (backups if manifest.archive in names else broken).append(manifest)
        owned = {m.id + MANIFEST_SUFFIX for m in [*backups, *broken]} | {m.archive for m in backups}
        owned.add(IGNORE_FILE)
        stems = tuple(name.removesuffix(MANIFEST_SUFFIX) + "." for name in damaged)
        leftovers = [
            n for n in names if n not in owned and n not in damaged and not n.startswith(stems)
        ]
        return Contents(sorted(backups, key=_order), sorted(broken, key=_order), damaged, leftovers)

    def find(self, backup_id: str) -> Manifest:
        check_id(backup_id)
        path = self.path(backup_id + MANIFEST_SUFFIX)
        if not self.host.exists(path):
            raise OperatorError(
                f"no backup {backup_id!r} in {self.host.name}:{self.directory}",
                f"list the backups with `invoke db.backups --env {self.settings.name}`",
            )
        manifest = Manifest.from_json(self.host.read_file(path), path)
        if not self.host.exists(self.path(manifest.archive)):
            raise OperatorError(
                f"backup {backup_id}: its archive {manifest.archive} is missing",
                "pick another backup (`invoke db.backups`); `invoke db.prune` removes this one",
            )
        return manifest

    def new_id(self, when: datetime, release: str | None) -> str:
        """A fresh id; two backups in the same second get a counter."""
        base = new_id(self.settings.name, when, release)
        candidate, n = base, 1
        while self.host.exists(self.path(candidate + MANIFEST_SUFFIX)):
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    def partial_path(self, backup_id: str, suffix: str) -> str:
        return self.path(f".{backup_id}{suffix}{PARTIAL_SUFFIX}")

    def save(self, manifest: Manifest) -> None:
        self.host.write_file(
            self.path(manifest.id + MANIFEST_SUFFIX), manifest.to_json(), mode=0o600
        )

    def delete(self, manifest: Manifest) -> None:
        """Manifest first: once it is gone the backup no longer exists, even if we stop here."""
        self.host.remove(self.path(manifest.id + MANIFEST_SUFFIX))
        self.host.remove(self.path(manifest.archive))

    def remove(self, name: str) -> None:
        self.host.remove(self.path(name))


def list_backups(settings: EnvironmentSettings, host: Host) -> Contents:
    """Backups (oldest first) and whatever else lies in the environment's backup directory."""
    return BackupStore(settings, host).scan()


def find_backup(settings: EnvironmentSettings, host: Host, backup_id: str) -> Manifest:
    """The manifest of ``backup_id``; an unknown or malformed id is an operator error."""
    return BackupStore(settings, host).find(backup_id)
