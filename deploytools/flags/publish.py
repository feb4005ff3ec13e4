"""The flag state on every host of an environment: read from the primary, written to them all
at once, under the flags lock.

The primary's file is the state of record; every other host gets a copy, since the app's
processes read the file of the host they run on. The flags lock (``flags.lock`` beside the
deploy lock) is held only while files are written: a kill must not wait for a deploy that
holds the deploy lock for minutes, yet two writers must not interleave host by host (a stage
computed before a kill, written after it, would bring the killed flag back on some hosts).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from deploytools.errors import DeployToolsError
from deploytools.flags import state
from deploytools.flags.state import FlagState
from deploytools.hosts.base import Host
from deploytools.site.lock import DeployLock, Holder, LockHeld

if TYPE_CHECKING:
    from deploytools.site.journal import Journal
    from deploytools.ui import Ui

LOCK_WAIT = 15.0  # seconds: another writer holds it only while it writes the files
T = TypeVar("T")


class FlagSite(Protocol):
    """What reading and writing the flag state needs of a run: a ``Site``, or the kill
    card's ``CardSite`` (a kill before the config is loaded)."""

    ui: Ui

    @property
    def host_names(self) -> list[str]: ...

    @property
    def primary(self) -> Host: ...

    @property
    def journal(self) -> Journal: ...

    def host(self, name: str) -> Host: ...

    def on_each(self, names: Sequence[str], work: Callable[[str], T]) -> list[T]: ...

    def flags_file(self, name: str) -> str: ...

    def flags_lock(self) -> DeployLock: ...


def read(site: FlagSite) -> FlagState:
    """The state of record (the primary's file); no file yet is every flag unset."""
    return state.read(site.primary, site.flags_file(site.host_names[0])) or FlagState()


def read_each(site: FlagSite) -> dict[str, FlagState | str | None]:
    """Every host's file: its state, None when it has none, or why it could not be read."""

    def one(name: str) -> FlagState | str | None:
        try:
            return state.read(site.host(name), site.flags_file(name))
        except (DeployToolsError, OSError) as exc:
            return _said(exc)

    return dict(zip(site.host_names, site.on_each(site.host_names, one), strict=True))


def write_all(site: FlagSite, new: FlagState, names: Sequence[str]) -> dict[str, str]:
    """Write ``new`` to the hosts ``names`` at once (each file replaced atomically); the hosts
    that failed, with why (none: all written)."""

    def one(name: str) -> str | None:
        host = site.host(name)
        try:
            path = site.flags_file(name)
            host.makedirs(path.rpartition("/")[0])
            state.write(host, path, new)
        except (DeployToolsError, OSError) as exc:
            return _said(exc)
        return None

    done = zip(names, site.on_each(names, one), strict=True)
    return {name: error for name, error in done if error is not None}


@contextlib.contextmanager
def flags_lock(site: FlagSite, command: str) -> Iterator[None]:
    """Hold the flags lock (waiting up to ``LOCK_WAIT`` s). One left by a writer that died
    is taken over: a half-written change is made whole by the next write to every host."""
    lock = site.flags_lock()
    try:
        try:
            lock.acquire(Holder.me(command), wait=LOCK_WAIT)
        except LockHeld:
            stale = lock.stale_reason(lock.holder())
            if stale is None:
                raise
            site.ui.warn(f"took over the flags lock {lock.path} ({stale})")
            lock.force_release()
            lock.acquire(Holder.me(command))
        yield
    finally:
        lock.release()


def _said(exc: BaseException) -> str:
    return exc.problem if isinstance(exc, DeployToolsError) else str(exc)
