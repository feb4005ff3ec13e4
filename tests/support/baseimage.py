"""The local Python base image: no registry can be reached, so it is built from Debian packages.

``debootstrap`` makes a minimal bookworm root filesystem with Python (about a minute); it is
cached as a tarball under ``~/.cache/deploytools`` keyed by what goes into it, and imported into
the Docker engine (a few seconds) whenever the engine lacks the image or holds an older one.
Used by ``tests/provision.py`` and the ``docker_engine`` fixture; no pytest import here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

IMAGE = "local/python-base:bookworm"
SUITE = "bookworm"
VARIANT = "minbase"
INCLUDE = ("python3", "python3-venv", "python3-pip", "ca-certificates")
LABEL = "org.deploytools.rootfs-key"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deploytools"


def rootfs_key() -> str:
    """Digest of the inputs that decide the content (not the mirror: any mirror gives the same)."""
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    inputs = {"suite": SUITE, "variant": VARIANT, "include": INCLUDE, "arch": arch, "format": 1}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def rootfs_tar(key: str) -> Path:
    return cache_dir() / f"python-base-{SUITE}-{key}.tar"


def apt_mirror() -> str:
    """The Debian archive this machine's apt uses (deb822 ``.sources`` or ``sources.list``)."""
    texts = [p.read_text() for p in sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    for text in texts:
        for stanza in text.split("\n\n"):
            fields: dict[str, str] = dict(re.findall(r"^(\w[\w-]*):[ \t]*(.*)$", stanza, re.M))
            if SUITE in fields.get("Suites", "").split() and fields.get("URIs"):
                return fields["URIs"].split()[0]
    lists = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]
    for path in lists:
        if path.exists():
            found = re.search(
                rf"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+{SUITE}\s", path.read_text(), re.M
            )
            if found:
                return found.group(1)
    return DEFAULT_MIRROR


def build_rootfs_tar(key: str, mirror: str) -> Path:
    """debootstrap into a scratch directory next to the cache, then tar it (needs root)."""
    target = rootfs_tar(key)
    scratch = target.with_suffix(".rootfs")
    partial = target.with_suffix(".tar.partial")
    _remove_tree(scratch)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        _run(
            [
                "debootstrap",
                f"--variant={VARIANT}",
                f"--include={','.join(INCLUDE)}",
                SUITE,
                str(scratch),
                mirror,
            ],
            timeout=1200,
        )
        _run(["tar", "-C", str(scratch), "-cf", str(partial), "."], timeout=600)
        partial.replace(target)
    finally:
        _remove_tree(scratch)
        partial.unlink(missing_ok=True)
    return target


def image_is_current(docker: str, key: str) -> bool:
    """The engine holds ``IMAGE`` built from the rootfs with this ``key``."""
    done = subprocess.run(
        [docker, "image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', IMAGE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode == 0 and done.stdout.strip() == key


def import_image(docker: str, key: str) -> None:
    """``docker import`` the cached rootfs as ``IMAGE``, labelled with its key."""
    changes = [f"LABEL {LABEL}={key}", "ENV LANG=C.UTF-8", 'CMD ["python3"]']
    flags = [arg for change in changes for arg in ("--change", change)]
    _run([docker, "import", *flags, str(rootfs_tar(key)), IMAGE], timeout=600)


def _run(argv: list[str], timeout: float) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise RuntimeError(f"{' '.join(argv[:3])} ... exited {done.returncode}:\n{output}")


def _remove_tree(root: Path) -> None:
    """Delete a debootstrap tree, unmounting first whatever a failed run left mounted in it."""
    if not root.exists():
        return
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, timeout=60)
    shutil.rmtree(root, ignore_errors=True)
