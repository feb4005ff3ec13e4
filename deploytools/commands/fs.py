"""POSIX file-tool argv builders (coreutils) and parsers for their output.

For what the ``Host`` seam does not offer itself: free space, checksums and sizes computed on
the host that holds the files (a backup is never copied over the wire to be hashed), a rename
and a permission change.
"""

from __future__ import annotations

from collections.abc import Sequence

from deploytools.errors import DeployFailure

Argv = list[str]


def free_space(path: str) -> Argv:
    """``df`` in the POSIX format, 1024-byte blocks: one header line, then one line per path."""
    return ["df", "-P", "-k", "--", path]


def parse_free_space(output: str) -> int:
    """Available bytes from ``free_space`` output."""
    lines = [line for line in output.splitlines() if line.strip()]
    try:
        return int(lines[-1].split()[3]) * 1024
    except (IndexError, ValueError):
        raise DeployFailure(
            f"cannot read free space from df output: {output.strip()[:200]!r}"
        ) from None


def sha256(paths: Sequence[str]) -> Argv:
    """OpenSSL's SHA-256: about twice as fast as coreutils' on CPUs without SHA instructions."""
    return ["openssl", "dgst", "-sha256", "-r", *paths]


def sha256_coreutils(paths: Sequence[str]) -> Argv:
    """The fallback where OpenSSL's command-line tool is not installed; same output format."""
    return ["sha256sum", "--", *paths]


def parse_sha256(output: str) -> dict[str, str]:
    """``{path: hex digest}`` from ``sha256`` output: ``HEX *PATH`` (or ``HEX  PATH``)."""
    digests = {}
    for line in output.splitlines():
        digest, _, path = line.partition(" ")
        if len(digest) == 64 and path:
            digests[path[1:]] = digest
    return digests


def byte_counts(paths: Sequence[str]) -> Argv:
    return ["wc", "-c", "--", *paths]


def parse_byte_counts(output: str) -> dict[str, int]:
    """``{path: bytes}`` from ``wc -c`` output, without its ``total`` line."""
    counts = {}
    for line in output.splitlines():
        count, _, path = line.strip().partition(" ")
        if count.isdigit() and path and path != "total":
            counts[path.strip()] = int(count)
    return counts


def move(source: str, target: str) -> Argv:
    """Rename within one file system (atomic); the caller makes sure ``target`` does not exist."""
    return ["mv", "--", source, target]


def make_private(path: str) -> Argv:
    """Owner-only access for a file or a whole tree (0600 files, 0700 directories)."""
    return ["chmod", "-R", "go-rwx", "--", path]


def receive(path: str) -> Argv:
    """Write standard input to ``path`` (a new name: the caller renames it after checking),
    flushed to disk before it exits."""
    return ["dd", f"of={path}", "bs=1M", "conv=fsync", "status=none"]


def unpack(archive: str, into: str) -> Argv:
    """Extract a tar into the existing directory ``into``, with the modes it records and the
    files owned by whoever unpacks (never the archive's uid)."""
    return ["tar", "-x", "-p", "--no-same-owner", "-f", archive, "-C", into]
