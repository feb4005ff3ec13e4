"""Everything that differs between a POSIX and a Windows control machine lives here.

The lint check (``nox -s lint``) allows process-group and fork-like calls only in this module.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

IS_WINDOWS = sys.platform == "win32"


def detached_popen_kwargs() -> dict[str, Any]:
    """Popen options that start a child in its own process group, so it outlives us cleanly."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def terminate_group(pid: int, *, kill: bool = False) -> None:
    """Ask (or force) a process group started with ``detached_popen_kwargs`` to stop."""
    if sys.platform == "win32":
        os.kill(pid, signal.SIGTERM if kill else signal.CTRL_BREAK_EVENT)
        return
    try:
        os.killpg(pid, signal.SIGKILL if kill else signal.SIGTERM)
    except ProcessLookupError:
        pass


def pid_alive(pid: int) -> bool:
    """True if a process with this id exists (on this machine)."""
    if IS_WINDOWS:
        out = subprocess.run(
            ["tasklist", "/FI", f"PID eq {pid}", "/NH"], capture_output=True, text=True
        ).stdout
        return str(pid) in out
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """An exited child nobody reaped yet (e.g. under a PID 1 that does not reap) is not alive."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rpartition(b")")[2].split()[:1]
    except OSError:  # no /proc (macOS, BSD): trust kill(0)
        return False
    return state in ([b"Z"], [b"X"])


def link_dir(target: str, link: str) -> None:
    """A directory link: a symlink on POSIX, a junction on Windows (needs no privilege)."""
    if sys.platform == "win32":
        import _winapi

        _winapi.CreateJunction(target, link)
    else:
        os.symlink(target, link, target_is_directory=True)


def is_link(path: Path) -> bool:
    """A symlink or a junction: removing the tree must not follow it into shared data."""
    if sys.platform == "win32":  # Path.is_junction is 3.12+: read the reparse-point flag
        attributes = getattr(path.lstat(), "st_file_attributes", 0) if path.exists() else 0
        return path.is_symlink() or bool(attributes & stat.FILE_ATTRIBUTE_REPARSE_POINT)
    return path.is_symlink()


def private_file_mode_ok(mode: int) -> bool:
    """Secrets must not be readable by group or others (POSIX only; Windows uses ACLs)."""
    return IS_WINDOWS or mode & 0o077 == 0



def arg_max() -> int:
    """This machine's ``ARG_MAX``: arguments and environment of a new process, in bytes (a
    Windows host's limits do not come from here: see ``launch.limits_for``)."""
    try:
        return int(os.sysconf("SC_ARG_MAX"))
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows), or no answer
        return 256 * 1024  # POSIX guarantees at least 4096; every current system has this
