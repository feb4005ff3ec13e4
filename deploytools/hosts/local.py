"""``LocalHost``: the control machine itself, on ``subprocess`` with argv lists only."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from deploytools import platform
from deploytools.errors import CommandError
from deploytools.hosts.base import Result, check_secret_env, same_port

STOP_GRACE = 3.0  # seconds between asking a command to stop and killing it


class LocalHost:
    """Runs commands and touches files on this machine (POSIX or Windows)."""

    local = True

    def __init__(self, name: str = "local") -> None:
        self.name = name

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
        args = [str(a) for a in argv]
        check_secret_env(secret_env or {})
        extra = {**(env or {}), **(secret_env or {})}  # the child's environment is private
        full_env = {**os.environ, **extra} if extra else None
        started = time.monotonic()
        try:
            # Its own process group: a terminal's Ctrl-C reaches deploytools, which decides
            # (an undo's command must not die of the Ctrl-C the undo is shielded from).
            proc = subprocess.Popen(
                args,
                env=full_env,
                cwd=cwd,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                **platform.detached_popen_kwargs(),
            )
        except FileNotFoundError as exc:
            raise CommandError(args, 127, f"{args[0]}: not found", self.name) from exc
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            out, err = _stop(proc)
            raise CommandError(args, None, out + err, self.name) from None
        except BaseException:  # Ctrl-C, SIGTERM: the command stops with us
            _stop(proc)
            raise
        result = Result(args, proc.returncode, out, err, time.monotonic() - started)
        if check and not result.ok:
            raise CommandError(args, proc.returncode, out + err, self.name)
        return result

    def read_file(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        target = Path(path)
        if mode is None and target.exists():
            mode = target.stat().st_mode & 0o7777
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if mode is not None:
                os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def append_file(self, path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        return Path(path).exists()

    def makedirs(self, path: str, mode: int = 0o755) -> None:
        Path(path).mkdir(parents=True, exist_ok=True, mode=mode)

    def create_dir(self, path: str) -> bool:
        try:
            Path(path).mkdir(mode=0o700)
        except FileExistsError:
            return False
        return True

    def link_dir(self, target: str, link: str) -> None:
        platform.link_dir(target, link)

    def remove(self, path: str) -> None:
        target = Path(path)
        if target.is_dir() and not platform.is_link(target):
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)

    def listdir(self, path: str) -> list[str]:
        target = Path(path)
        return sorted(p.name for p in target.iterdir()) if target.is_dir() else []

    def forward(self, remote_port: int) -> AbstractContextManager[int]:
        return same_port(remote_port)


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Ask the command's whole group to stop, then kill it; what it printed until then."""
    platform.terminate_group(proc.pid)
    try:
        return proc.communicate(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        platform.terminate_group(proc.pid, kill=True)
    try:
        return proc.communicate(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired as exc:  # a child that left the group holds the pipes
        return _text(exc.stdout), _text(exc.stderr)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")
