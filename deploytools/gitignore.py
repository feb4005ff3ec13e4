"""deploytools' own directories in a project's tree stay out of git.

The state (journal, lock, releases, service logs) and the backups sit inside the project by
default (``.deploytools/``, ``backups/``). Untracked, they are one ``git add -A`` away from a
commit: database dumps in the repository, and a tree that deploytools' next write makes dirty,
so that the next deploy refuses it. Each directory gets a ``.gitignore`` of ``*``, as pytest,
mypy and ruff mark their caches: git then ignores it whole, with no line in the project's own
``.gitignore``.
"""

from __future__ import annotations

from deploytools.hosts.base import Host

IGNORE_FILE = ".gitignore"
IGNORE_ALL = b"# Written by deploytools: its state and backups never belong in git.\n*\n"


def keep_out_of_git(host: Host, directory: str) -> None:
    """``directory``'s ``.gitignore`` of ``*``, written once (an edited one is left alone)."""
    path = f"{directory}/{IGNORE_FILE}"
    if not host.exists(path):
        host.write_file(path, IGNORE_ALL, mode=0o644)
