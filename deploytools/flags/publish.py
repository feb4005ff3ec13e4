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
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from deploytools import targets
from deploytools.errors import DeployToolsError
from deploytools.flags import state
from deploytools.flags.state import FlagState
from deploytools.site.lock import DeployLock, Holder, LockHeld

if TYPE_CHECKING:
    from deploytools.site import Site

FLAGS_LOCK = "flags.lock"
LOCK_WAIT = 15.0  # seconds: another writer holds it only while it writes the files


def path_on(site: Site, name: str) -> str:
    return targets.flags_file(site.settings, site.host(name))


def read(site: Site) -> FlagState:
    """The state of record (the primary's file); no file yet is every flag unset."""
    return state.read(site.primary, path_on(site, site.host_names[0])) or FlagState()


def read_each(site: Site) -> dict[str, FlagState | str | None]:
    """Every host's file: its state, None when it has none, or why it could not be read."""

    def one(name: str) -> FlagState | str | None:
        try:
            return state.read(site.host(name), path_on(site, name))
        except (DeployToolsError, OSError) as exc:
            return _said(exc)

    return dict(zip(site.host_names, site.on_each(site.host_names, one), strict=True))


def write_all(site: Site, new: FlagState, names: Sequence[str]) -> dict[str, str]:
    """Write ``new`` to the hosts ``names`` at once (each file replaced atomically); the hosts
    that failed, with why (none: all written)."""

    def one(name: str) -> str | None:
        host = site.host(name)
        try:
            host.makedirs(targets.flags_dir(site.settings, host))
            state.write(host, path_on(site, name), new)
        except (DeployToolsError, OSError) as exc:
            return _said(exc)
        return None

    done = zip(names, site.on_each(names, one), strict=True)
    return {name: error for name, error in done if error is not None}


@contextlib.contextmanager
def flags_lock(site: Site, command: str) -> Iterator[None]:
    """Hold the flags lock (waiting up to ``LOCK_WAIT`` s). One left by a writer that died
    is taken over: a half-written change is made whole by the next write to every host."""
    lock = DeployLock(
        site.primary,
        site.state_dir,
        site.settings.timeouts.command,
        env=site.settings.name,
        name=FLAGS_LOCK,
    )
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
