"""A Docker engine of a test's own, beside the shared one: for tests that stop or fill an engine.

``with ExtraEngine() as engine:`` runs ``dockerd`` with its own socket, data root, exec root and
pid file under a temporary directory (no bridge, no iptables, the storage driver of the shared
engine; vfs on a tmpfs data root), so a test may SIGTERM it, restart it or fill its disk without
touching anyone else's containers.
Point a client at it with ``engine.env`` (``DOCKER_HOST``); give it images with ``load`` (from
the shared engine, ``docker save | docker load``) or build them there. ``data_root_mb`` puts
the data root on a tmpfs of that size: a small disk that a test can fill. On exit the engine
is stopped, whatever it runs, and its directory (mounts included) removed, also on failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support import parts, procs
from tests.support.docker_engine import DOCKERD_FLAGS, storage_flag
from tests.support.require import require

START_TIMEOUT = 90.0
STOP_TIMEOUT = 60.0  # dockerd stops its containers first (each within its stop timeout)


class ExtraEngine(procs.TempServer):
    """``dockerd`` of one test; ``start``/``stop`` may be called again to restart it."""

    _stop_timeout = STOP_TIMEOUT

    def __init__(self, *, data_root_mb: int | None = None) -> None:
        docker, dockerd = shutil.which("docker"), parts.program("dockerd")
        require(docker is not None, "docker CLI", parts.PROVISION)
        require(dockerd is not None, "dockerd (Docker engine)", parts.PROVISION)
        assert docker is not None and dockerd is not None
        self.docker_cli, self._dockerd = docker, dockerd
        super().__init__("dt-engine-")  # short: the sockets under it must fit 108 bytes
        self.socket = self._dir / "docker.sock"
        self.data_root = self._dir / "data"
        self.exec_root = self._dir / "exec"
        self.pidfile = self._dir / "docker.pid"
        self.log = self._dir / "dockerd.log"
        self._data_root_mb = data_root_mb

    @property
    def env(self) -> dict[str, str]:
        """What a docker client (or ``invoke``) needs in its environment to use this engine."""
        return {"DOCKER_HOST": f"unix://{self.socket}"}

    def _prepare(self) -> None:
        self.data_root.mkdir()
        if self._data_root_mb is not None:
            size = f"size={self._data_root_mb}m"
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", size, "tmpfs", str(self.data_root)],
                check=True,
                capture_output=True,
                timeout=30,
            )

    def start(self) -> None:
        if self._running():
            return
        argv = [
            self._dockerd,
            "-H",
            self.env["DOCKER_HOST"],
            "--data-root",
            str(self.data_root),
            "--exec-root",
            str(self.exec_root),
            "--pidfile",
            str(self.pidfile),
            *DOCKERD_FLAGS,
            storage_flag(tmpfs=self._data_root_mb is not None),
        ]
        self._proc = procs.start(argv, self.log, cwd=self._dir)
        procs.wait_until(self.answers, "extra dockerd", self._proc, self.log, START_TIMEOUT)

    def terminate(self) -> None:
        """SIGTERM, as systemd stops dockerd, without waiting: the test decides what comes next."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float = STOP_TIMEOUT) -> None:
        if self._proc is not None:
            self._proc.wait(timeout)

    def answers(self) -> bool:
        try:
            done = self.docker("version", "--format", "{{.Server.Version}}", timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def docker(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``docker ARGS`` against this engine (not checked: see ``check``)."""
        return subprocess.run(
            [self.docker_cli, *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def check(self, *args: str, timeout: float = 300) -> str:
        """``docker ARGS`` against this engine that must succeed; its standard output."""
        done = self.docker(*args, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done.stdout

    def events(self, *filters: str, fmt: str) -> subprocess.Popen[str]:
        """``docker events`` of this engine as they happen, one ``fmt`` line each (the stream
        ends when the engine stops; the caller kills it otherwise)."""
        argv = [self.docker_cli, "events", "--format", fmt]
        for condition in filters:
            argv += ["--filter", condition]
        return subprocess.Popen(
            argv,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def load(self, images: Sequence[str], source: Mapping[str, str] | None = None) -> None:
        """Copy ``images`` from the engine ``source`` names (default: the shared one) into
        this one: ``docker save | docker load``, streamed."""
        env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
        save = subprocess.Popen(
            [self.docker_cli, "save", *images],
            env={**env, **(source or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert save.stdout is not None
        try:
            loaded = subprocess.run(
                [self.docker_cli, "load", "--quiet"],
                env={**os.environ, **self.env},
                stdin=save.stdout,
                capture_output=True,
                timeout=600,
                check=False,
            )
        finally:
            save.stdout.close()
            _, err = save.communicate(timeout=600)
        if save.returncode or loaded.returncode:
            raise AssertionError(f"loading {images}: {err.decode()} {loaded.stderr.decode()}")

    def free_bytes(self) -> int:
        """Free space on the data root (what ``df`` says: what the engine can still write)."""
        stat = os.statvfs(self.data_root)
        return stat.f_bavail * stat.f_frsize

    def _release(self) -> None:
        _unmount_below(self._dir)

    def stop(self) -> None:
        """Stop dockerd (SIGTERM, then SIGKILL) and wait for it; a restart may follow."""
        if self._proc is None:
            return
        procs.stop(self._proc, signal.SIGTERM, self._stop_timeout)
        _wait_gone(self.pidfile)


def _wait_gone(pidfile: Path, timeout: float = 10.0) -> None:
    """dockerd removes its pid file last; a new one refuses to start while it is there."""
    deadline = time.monotonic() + timeout
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pidfile.unlink(missing_ok=True)


def _unmount_below(root: Path) -> None:
    """What dockerd or containerd left mounted under ``root`` (a killed engine leaves netns
    and shm mounts), and the tmpfs data root: deepest first, lazily."""
    prefix = str(root.resolve())
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    inside = [p for p in points if p == prefix or p.startswith(prefix + "/")]
    for point in sorted(inside, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True, timeout=60)
