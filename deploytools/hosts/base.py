"""The one I/O seam: everything a step does to the world goes through a ``Host``.

Paths are POSIX strings on remote hosts and native paths on the local one, so the protocol
takes ``str``. Steps never learn which kind of host they are on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Result:
    """What a finished command left behind."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@runtime_checkable
class Host(Protocol):
    """A machine that runs argv lists and holds files."""

    name: str

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        check: bool = True,
        stdin: str | None = None,
    ) -> Result:
        """Run ``argv`` (never through a shell); raise ``CommandError`` if ``check`` fails."""
        ...

    def read_file(self, path: str) -> bytes: ...

    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        """Write atomically (temp file + rename); keep the old mode unless ``mode`` is given."""
        ...

    def append_file(self, path: str, data: bytes) -> None:
        """Append with O_APPEND (concurrent writers never overwrite each other); a new file
        gets mode 0600. For journals: one whole line per call."""
        ...

    def exists(self, path: str) -> bool: ...

    def makedirs(self, path: str, mode: int = 0o755) -> None: ...

    def create_dir(self, path: str) -> bool:
        """Create one directory atomically; False if it already existed (locks rely on this)."""
        ...

    def remove(self, path: str) -> None:
        """Remove a file or a whole directory tree; a missing path is not an error."""
        ...

    def link_dir(self, target: str, link: str) -> None:
        """Make ``link`` point at the directory ``target`` (a symlink; a junction on Windows)."""
        ...

    def listdir(self, path: str) -> list[str]: ...

    def forward(self, remote_port: int) -> contextlib.AbstractContextManager[int]:
        """Make ``remote_port`` on the host reachable locally; yields the local port."""
        ...


@contextlib.contextmanager
def same_port(port: int) -> Iterator[int]:
    """``forward`` for a host whose ports are already local."""
    yield port
