"""The real programs the integration tests need: where to find them and how to get them.

Shared by ``tests/provision.py`` (which installs them) and the fixtures (which skip or fail with
the same hint), so the two never disagree. No pytest import here: provisioning runs without it.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path

#: Unprivileged account that owns test clusters: initdb and postgres refuse to run as root.
TEST_USER = "deploytools-test"
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
PROVISION = "run `python tests/provision.py` as root on Debian"


def pg_bindir() -> Path | None:
    """Directory holding initdb/pg_ctl/postgres: newest Debian cluster, else ``pg_config``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(out.stdout.strip())
        if out.returncode == 0 and (bindir / "initdb").exists():
            return bindir
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def program(name: str) -> str | None:
    """``shutil.which`` that also looks in the sbin directories a non-root PATH may lack."""
    found = shutil.which(name)
    if found:
        return found
    return next((f"{d}/{name}" for d in SBIN_DIRS if Path(d, name).exists()), None)


def compose_v2_version(docker: str) -> str | None:
    """``docker compose`` version if it is v2 (the plugin), else None."""
    try:
        out = subprocess.run(
            [docker, "compose", "version", "--short"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = out.stdout.strip().removeprefix("v")
    return version if out.returncode == 0 and version.startswith("2.") else None
