"""File facts computed on the host that holds the files: free space, size and SHA-256.

An archive may be gigabytes on a remote machine: it is measured and hashed where it lies.
A directory archive (pg_dump ``--format=directory``) is hashed as the SHA-256 of its
``sha256sum``-style listing, file names relative and sorted, so the digest survives a rename.
"""

from __future__ import annotations

import hashlib

from deploytools.commands import fs
from deploytools.errors import CommandError
from deploytools.hosts.base import Host

NOT_FOUND = 127  # the exit status of a command that is not installed


def free_bytes(host: Host, path: str) -> int:
    return fs.parse_free_space(host.run(fs.free_space(path)).stdout)


def archive_files(host: Host, archive: str, is_directory: bool) -> list[str]:
    if not is_directory:
        return [archive]
    return [f"{archive}/{name}" for name in host.listdir(archive)]


def measure(host: Host, archive: str, *, is_directory: bool, timeout: float) -> tuple[int, str]:
    """``(bytes, sha256 hex)`` of a file, or of every file of a directory archive."""
    paths = archive_files(host, archive, is_directory)
    sizes = fs.parse_byte_counts(host.run(fs.byte_counts(paths), timeout=timeout).stdout)
    digests = fs.parse_sha256(_sha256(host, paths, timeout))
    size = sum(sizes.get(p, 0) for p in paths)
    if not is_directory:
        return size, digests.get(archive, "")
    listing = "".join(f"{digests.get(p, '')}  {p[len(archive) + 1 :]}\n" for p in sorted(paths))
    return size, hashlib.sha256(listing.encode()).hexdigest()


def sha256(host: Host, path: str, timeout: float) -> str:
    """The SHA-256 hex digest of one file, computed on the host that holds it."""
    return fs.parse_sha256(_sha256(host, [path], timeout)).get(path, "")


def _sha256(host: Host, paths: list[str], timeout: float) -> str:
    try:
        return host.run(fs.sha256(paths), timeout=timeout).stdout
    except CommandError as exc:
        if exc.returncode != NOT_FOUND:
            raise
        return host.run(fs.sha256_coreutils(paths), timeout=timeout).stdout


def move(host: Host, source: str, target: str) -> None:
    host.run(fs.move(source, target))


def make_private(host: Host, path: str) -> None:
    host.run(fs.make_private(path))
