"""A Docker engine with the compose v2 plugin and the local Python base image.

An engine that already answers is used as it is and left running; otherwise ``dockerd`` is
started without bridge or iptables (tests use host networking on loopback only) and stopped
again on exit. Images stay in /var/lib/docker, so the base image is imported only once.

Under pytest-xdist several workers use the one engine: starting it (and importing the base
image) happens under a file lock, and a worker that started dockerd leaves it running for the
others and hands its pid to the controller, which stops it when the whole run ends
(``stop_handed_over``, from tests/conftest.py).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from tests.support import baseimage, parts, procs
from tests.support.require import require

DOCKERD_FLAGS = ("--bridge=none", "--iptables=false", "--ip6tables=false")


def storage_flag(*, tmpfs: bool = False) -> str:
    """overlay2 where the kernel has overlayfs (these machines do): a container or a build
    step then shares its image's files, where vfs copies the whole root filesystem for each
    (a build step or a container ~10 s here, against ~0.5 s). vfs otherwise, and for a data
    root on tmpfs (the full-disk tests size it for vfs)."""
    filesystems = Path("/proc/filesystems")
    has_overlay = filesystems.exists() and "\toverlay\n" in filesystems.read_text()
    return f"--storage-driver={'overlay2' if has_overlay and not tmpfs else 'vfs'}"


PIDFILE = Path("/var/run/docker.pid")
_HANDED_OVER: list[subprocess.Popen[bytes]] = []  # dockerd this worker started for all of them


class DockerEngine(procs.TempServer):
    """``with DockerEngine() as docker:`` ``docker.base_image`` and ``docker compose`` work."""

    base_image = baseimage.IMAGE
    compose_version = ""
    _stop_timeout = 60.0  # SIGTERM: dockerd stops its containers and containerd first

    def __init__(self) -> None:
        docker = shutil.which("docker")
        require(docker is not None, "docker CLI", parts.PROVISION)
        assert docker is not None
        self.docker = docker
        super().__init__("deploytools-dockerd-")
        self._log = self._dir / "dockerd.log"

    def __enter__(self) -> Self:
        with _engine_lock():
            return self._enter()

    def _enter(self) -> Self:
        super().__enter__()
        handover = handover_file(os.getppid()) if "PYTEST_XDIST_WORKER" in os.environ else None
        if handover is not None and self._proc is not None:
            handover.write_text(str(self._proc.pid))
            # The other workers use it too: the controller stops it. Kept referenced, or its
            # Popen's finalizer would warn that it still runs.
            _HANDED_OVER.append(self._proc)
            self._proc = None
        try:
            version = parts.compose_v2_version(self.docker)
            require(version is not None, "docker compose v2 plugin", parts.PROVISION)
            assert version is not None
            self.compose_version = version
            self._ensure_base_image()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start(self) -> None:
        """Start ``dockerd`` unless an engine already answers (that one is not ours to stop)."""
        if self._answers():
            return
        dockerd = parts.program("dockerd")
        require(dockerd is not None, "dockerd (Docker engine)", parts.PROVISION)
        assert dockerd is not None
        _clear_stale_pidfile()
        argv = [dockerd, *DOCKERD_FLAGS, storage_flag()]
        self._proc = procs.start(argv, self._log, cwd=self._dir)
        procs.wait_until(self._answers, "dockerd", self._proc, self._log, timeout=90)

    def _answers(self) -> bool:
        try:
            done = subprocess.run(
                [self.docker, "version", "--format", "{{.Server.Version}}"],
                capture_output=True,
                timeout=10,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def _ensure_base_image(self) -> None:
        key = baseimage.rootfs_key()
        if baseimage.image_is_current(self.docker, key):
            return
        tar = baseimage.rootfs_tar(key)
        require(tar.exists(), f"base image rootfs {tar}", parts.PROVISION)
        baseimage.import_image(self.docker, key)


@contextmanager
def _engine_lock() -> Iterator[None]:
    """One process at a time asks whether the engine answers and, if not, starts it."""
    with open(Path(tempfile.gettempdir()) / "deploytools-dockerd.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def handover_file(controller_pid: int) -> Path:
    """Where a pytest-xdist worker leaves the pid of the dockerd it started for the run of
    ``controller_pid`` (its parent)."""
    return Path(tempfile.gettempdir()) / f"deploytools-dockerd-of-{controller_pid}.pid"


def stop_handed_over(controller_pid: int, timeout: float = DockerEngine._stop_timeout) -> None:
    """Stop the dockerd a worker of this run started (SIGTERM, then SIGKILL), if any."""
    path = handover_file(controller_pid)
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        path.unlink(missing_ok=True)


def _clear_stale_pidfile() -> None:
    """A dockerd killed with its session (as before every CI run) leaves its pid file, and a
    new dockerd refuses to start while it exists; remove it when that process is gone."""
    try:
        pid = int(PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return
    if not Path(f"/proc/{pid}").exists():
        PIDFILE.unlink(missing_ok=True)
