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


class LocalHost:
    """Runs commands and touches files on this machine (POSIX or Windows)."""

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
            proc = subprocess.run(
                args,
                env=full_env,
                cwd=cwd,
                timeout=timeout,
                input=stdin,
                capture_output=True,
                text=True,
                errors="replace",
                stdin=None if stdin is not None else subprocess.DEVNULL,
            )
        except FileNotFoundError as exc:
            raise CommandError(args, 127, f"{args[0]}: not found", self.name) from exc
        except subprocess.TimeoutExpired as exc:
            output = _text(exc.stdout) + _text(exc.stderr)
            raise CommandError(args, None, output, self.name) from None
        result = Result(args, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
        if check and not result.ok:
            raise CommandError(args, proc.returncode, proc.stdout + proc.stderr, self.name)
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


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")
