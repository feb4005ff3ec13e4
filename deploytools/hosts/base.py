"""The one I/O seam: everything a step does to the world goes through a ``Host``.

Paths are POSIX strings on remote hosts and native paths on the local one, so the protocol
takes ``str``. Steps never learn which kind of host they are on.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from deploytools.errors import OperatorError

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CHUNK = 65536  # bytes read or sent at a time when a stream passes through deploytools
COMMAND_TIMEOUT = 600.0  # a host's bound for a command given none (timeouts.command's default)


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
    # This machine (the control machine): config paths are the project's own, and processes
    # started here are deploytools' children. Code outside hosts/ asks this, never the type.
    local: bool

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        check: bool = True,
        stdin: str | None = None,
    ) -> Result:
        """Run ``argv`` (never through a shell); raise ``CommandError`` if ``check`` fails.

        ``timeout`` None is the host's own bound (``timeouts.command``), never none at all: a
        command that hangs on a host must not hang the run.

        ``env`` values may show on the remote command line (``ps``): only for what is not
        secret. ``secret_env`` values reach the command's environment and nothing else: no
        argv, no file (see ``check_secret_env`` for what they may hold).
        """
        ...

    def stream(
        self, argv: Sequence[str], *, timeout: float
    ) -> contextlib.AbstractContextManager[Iterator[bytes]]:
        """``argv``'s standard output in chunks as they come (never whole in memory), for
        ``feed`` on another host. Leaving the block waits for the command (within
        ``timeout``) and raises ``CommandError`` if it failed; an exception inside stops it."""
        ...

    def feed(
        self, argv: Sequence[str], chunks: Iterable[bytes], *, timeout: float, check: bool = True
    ) -> Result:
        """Run ``argv`` with ``chunks`` streamed to its standard input; stdout and stderr are
        kept (small). An exception from ``chunks`` stops the command (it never sees a
        clean end of a cut input) and is raised here."""
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


def check_secret_env(secret_env: Mapping[str, str]) -> None:
    """Refuse what no host can pass: a bad name, or a value with a line break or NUL (a
    remote host reads each value as one line of stdin; an environment cannot hold NUL)."""
    for name, value in secret_env.items():
        if not ENV_NAME.fullmatch(name):
            raise OperatorError(f"invalid environment variable name: {name!r}")
        if "\n" in value or "\0" in value:
            raise OperatorError(
                f"the secret value for {name} contains a line break or NUL character, which"
                " cannot be handed to a command without putting it on a command line or in a file",
                "use a value without line breaks (check the env file or URL it comes from)",
            )


def pour(
    chunks: Iterable[bytes],
    write: Callable[[bytes], object],
    close: Callable[[], object],
    abort: Callable[[], object],
    failed: list[BaseException],
) -> None:
    """Feed a command's input from ``chunks`` (in a thread of its own: ``feed``).

    The input ends cleanly (``close``) only when ``chunks`` did: if they raise, the error goes
    to ``failed`` and ``abort`` stops the command, which must never take a cut stream for a
    whole one. An input the command stopped reading (it exited) ends the pouring quietly.
    """
    source = iter(chunks)
    while True:
        try:
            chunk = next(source)
        except StopIteration:
            break
        except BaseException as exc:
            failed.append(exc)
            abort()
            return
        try:
            write(chunk)
        except OSError:
            break  # the command exited without reading all of its input
    with contextlib.suppress(OSError):
        close()


@contextlib.contextmanager
def same_port(port: int) -> Iterator[int]:
    """``forward`` for a host whose ports are already local."""
    yield port
