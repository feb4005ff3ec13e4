"""``LocalHost``: the control machine itself, on ``subprocess`` with argv lists only."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any

from deploytools import platform
from deploytools.errors import CommandError
from deploytools.hosts.base import (
    CHUNK,
    COMMAND_TIMEOUT,
    Result,
    check_secret_env,
    pour,
    same_port,
)

STOP_GRACE = 3.0  # seconds between asking a command to stop and killing it
# A new private file, as tempfile.mkstemp opens one (binary on Windows, no symlink followed).
NEW_TEMP_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
)


class LocalHost:
    """Runs commands and touches files on this machine (POSIX or Windows)."""

    local = True

    def __init__(self, name: str = "local", command_timeout: float = COMMAND_TIMEOUT) -> None:
        self.name = name
        self.command_timeout = command_timeout

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
        proc: subprocess.Popen[str] = self._start(
            args,
            env=full_env,
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        try:
            out, err = proc.communicate(
                stdin, timeout=self.command_timeout if timeout is None else timeout
            )
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

    def _start(self, args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """``Popen`` in a process group of its own: a terminal's Ctrl-C reaches deploytools,
        which decides (an undo's command must not die of the Ctrl-C the undo is shielded from)."""
        try:
            return subprocess.Popen(args, **kwargs, **platform.detached_popen_kwargs())
        except FileNotFoundError as exc:
            raise CommandError(args, 127, f"{args[0]}: not found", self.name) from exc

    @contextmanager
    def stream(self, argv: Sequence[str], *, timeout: float) -> Iterator[Iterator[bytes]]:
        args = [str(a) for a in argv]
        with tempfile.TemporaryFile() as err:
            proc: subprocess.Popen[bytes] = self._start(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
            )
            deadline = _Deadline(proc, timeout)
            out = proc.stdout
            assert out is not None
            try:
                yield iter(lambda: out.read(CHUNK), b"")
                out.close()  # a reader that stopped early: the command gets EPIPE, not a hang
                proc.wait()  # bounded: the deadline kills it
            except BaseException:
                _kill(proc)
                raise
            finally:
                deadline.cancel()
                out.close()
            self._check(args, proc, deadline, b"", err)

    def feed(
        self, argv: Sequence[str], chunks: Iterable[bytes], *, timeout: float, check: bool = True
    ) -> Result:
        args = [str(a) for a in argv]
        started = time.monotonic()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            # Output to files: a command that prints while its input is still coming can
            # never block on a full pipe that nobody reads.
            proc: subprocess.Popen[bytes] = self._start(
                args, stdin=subprocess.PIPE, stdout=out, stderr=err
            )
            deadline = _Deadline(proc, timeout)
            assert proc.stdin is not None
            failed: list[BaseException] = []
            stdin = proc.stdin
            feeder = threading.Thread(
                target=pour,
                args=(chunks, stdin.write, stdin.close, lambda: _kill(proc), failed),
                daemon=True,
            )
            feeder.start()
            try:
                proc.wait()  # bounded: the deadline kills it; interruptible by a signal
            except BaseException:
                _kill(proc)
                raise
            finally:
                deadline.cancel()
                feeder.join(STOP_GRACE)  # ends when the input does, or on the broken pipe
                with contextlib.suppress(OSError):
                    stdin.close()  # already, unless the input broke or the command died
            if failed:
                raise failed[0]
            stdout = self._check(args, proc, deadline, out, err, check=check)
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        return Result(args, proc.returncode, stdout, stderr, time.monotonic() - started)

    def _check(
        self,
        args: list[str],
        proc: subprocess.Popen[bytes],
        deadline: _Deadline,
        out: IO[bytes] | bytes,
        err: IO[bytes],
        *,
        check: bool = True,
    ) -> str:
        """The command's stdout; ``CommandError`` if it timed out, or failed and ``check``."""
        if not isinstance(out, bytes):
            out.seek(0)
            out = out.read()
        err.seek(0)
        text = out.decode(errors="replace")
        said = text + err.read().decode(errors="replace")
        if deadline.passed:
            raise CommandError(args, None, said, self.name)
        if check and proc.returncode != 0:
            raise CommandError(args, proc.returncode, said, self.name)
        return text

    def read_file(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        target = Path(path)
        if mode is None and target.exists():
            mode = target.stat().st_mode & 0o7777
        # The temp name is known before the file exists, so that a signal raised the moment
        # it is created (one that arrived during the open) still finds it to remove.
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, NEW_TEMP_FLAGS, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if mode is not None:
                os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
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


class _Deadline:
    """Kills a command's group when ``timeout`` has passed, which also ends a read or write
    blocked on its pipes."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        self.passed = False
        self._timer = threading.Timer(timeout, self._expire, args=(proc,))
        self._timer.daemon = True
        self._timer.start()

    def _expire(self, proc: subprocess.Popen[bytes]) -> None:
        self.passed = True
        _kill(proc)

    def cancel(self) -> None:
        self._timer.cancel()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Stop a streaming command's group at once: what it was sending is cut anyway."""
    if proc.poll() is None:
        platform.terminate_group(proc.pid, kill=True)
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            pass  # a child that left the group; the caller's error says what happened
