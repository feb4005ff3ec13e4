"""A process release shipped to real sshd hosts (each its own root): intact on each, once,
and never half there.

The simulated hosts are this machine, so the test reads what they hold directly.
"""

from __future__ import annotations

import os
import secrets
import signal
import stat
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deploytools.codetree import write_archive
from deploytools.errors import CommandError, DeployFailure, OperatorError
from deploytools.hosts.base import Result
from deploytools.hosts.local import LocalHost
from deploytools.hosts.ssh import SshHost
from deploytools.runtime.process import RELEASE_MARKER
from deploytools.runtime.ship import ReleasePlace, has_release, refuse_secrets, ship_release
from tests.support.sshd import SshTarget

pytestmark = pytest.mark.integration

RELEASE = "release-prod-20261201T090000Z-abc1234"
SKIP = ["var", "config/prod.env"]  # what ProcessRuntime.not_code gives for this layout
FILES = {
    "app.py": b"print('hello')\n",
    "pkg/__init__.py": b"",
    "pkg/data.bin": secrets.token_bytes(700_000),  # several chunks on the wire
    "bin/run": b"#!/bin/sh\nexec python3 app.py\n",
    "var/.gitkeep": b"",  # a shared directory: linked, never shipped
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose app_dir ``app`` is committed, with env files beside its code: one
    ignored (as it should be), one tracked by mistake."""
    root = tmp_path_factory.mktemp("shiprepo")
    app = root / "app"
    for name, data in {**FILES, "config/prod.env": b"SECRET_KEY=tracked-by-mistake\n"}.items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_bytes(data)
    (app / "bin/run").chmod(0o755)
    (app / ".gitignore").write_text(".env\n")
    (app / ".env").write_text("SECRET_KEY=never-tracked\n")
    for argv in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "code"],
    ):
        subprocess.run(argv, cwd=root, check=True, capture_output=True, timeout=60)
    return root


@pytest.fixture(scope="module")
def archive(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shiparchive") / "release.tar"
    write_archive(LocalHost(), repo, "app", SKIP, out)
    return out


def place(target: SshTarget, tag: str) -> ReleasePlace:
    """A fresh releases directory for each test, inside the host's own root."""
    return ReleasePlace(f"{target.root}/{tag}/releases", f"{target.root}/{tag}/app", ("var",))


@pytest.fixture
def web(ssh_hosts: Callable[[str], SshTarget]) -> Iterator[list[tuple[SshTarget, SshHost]]]:
    targets = [ssh_hosts("ship-1"), ssh_hosts("ship-2")]
    hosts = [t.connect() for t in targets]
    yield list(zip(targets, hosts, strict=True))
    for host in hosts:
        host.close()


def test_a_release_reaches_two_hosts_intact_and_only_once(
    web: list[tuple[SshTarget, SshHost]], archive: Path
) -> None:
    tag = secrets.token_hex(4)
    with ThreadPoolExecutor(len(web)) as pool:
        shipped = list(
            pool.map(lambda th: ship_release(th[1], place(th[0], tag), RELEASE, archive,
                                             timeout=120), web)
        )  # fmt: skip
    assert [s.sent for s in shipped] == [[RELEASE], [RELEASE]]
    for target, host in web:
        where = place(target, tag)
        code = Path(where.releases_dir) / RELEASE
        for name, data in FILES.items():
            if not name.startswith("var/"):
                assert (code / name).read_bytes() == data, f"{name} on {target.name}"
        assert stat.S_IMODE((code / "app.py").stat().st_mode) == 0o640
        assert stat.S_IMODE((code / "bin/run").stat().st_mode) == 0o750
        assert stat.S_IMODE((code / "pkg").stat().st_mode) == 0o750
        assert os.readlink(code / "var") == f"{where.app_dir}/var"
        assert (code / RELEASE_MARKER).read_bytes() == RELEASE.encode()
        assert not (code / ".env").exists() and not (code / "config/prod.env").exists()
        assert sorted(os.listdir(where.releases_dir)) == [RELEASE]  # no upload, no partial
        assert has_release(host, str(code), RELEASE)

    before = {t.name: (Path(place(t, tag).releases_dir) / RELEASE).stat().st_ino for t, _ in web}
    again = [ship_release(h, place(t, tag), RELEASE, archive, timeout=120) for t, h in web]
    assert [(s.sent, s.present) for s in again] == [([], [RELEASE])] * 2
    after = {t.name: (Path(place(t, tag).releases_dir) / RELEASE).stat().st_ino for t, _ in web}
    assert after == before


class Truncating(SshHost):
    """A host whose uploads lose their last 100 bytes on the way (and report success)."""

    def feed(
        self, argv: list[str], chunks: Iterable[bytes], *, timeout: float, check: bool = True
    ) -> Result:  # type: ignore[override]
        data = b"".join(chunks)
        return super().feed(argv, [data[:-100]], timeout=timeout, check=check)


def test_a_damaged_upload_leaves_no_release_and_says_so(
    ssh_hosts: Callable[[str], SshTarget], archive: Path
) -> None:
    target = ssh_hosts("ship-1")
    host = target.connect(Truncating)
    where = place(target, secrets.token_hex(4))
    try:
        with pytest.raises(DeployFailure, match="arrived damaged on ship-1") as caught:
            ship_release(host, where, RELEASE, archive, timeout=120)
    finally:
        host.close()
    assert f"sent {archive.stat().st_size} bytes" in str(caught.value)
    assert os.listdir(where.releases_dir) == []  # no release, no partial, no upload


def test_a_disk_that_refuses_leaves_no_release(
    ssh_hosts: Callable[[str], SshTarget], archive: Path
) -> None:
    target = ssh_hosts("ship-2")
    where = place(target, secrets.token_hex(4))
    os.makedirs(where.releases_dir)
    mount = ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", where.releases_dir]
    subprocess.run(mount, check=True, capture_output=True, timeout=30)
    host = target.connect()
    try:
        with pytest.raises(CommandError, match="Read-only file system") as caught:
            ship_release(host, where, RELEASE, archive, timeout=120)
        assert caught.value.host == "ship-2"
        assert os.listdir(where.releases_dir) == []
    finally:
        host.close()
        subprocess.run(["umount", where.releases_dir], check=True, timeout=30)
    assert not os.path.exists(f"{where.releases_dir}/{RELEASE}")  # nor under the mount


def test_the_archive_holds_no_env_file_and_one_that_does_is_refused(
    repo: Path, archive: Path, tmp_path: Path, ssh_hosts: Callable[[str], SshTarget]
) -> None:
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "app.py" in names and "pkg/data.bin" in names
    assert not [n for n in names if n.endswith(".env") or n.startswith("var")]

    raw = tmp_path / "git-archive.tar"  # as git gives it: the tracked env file is in it
    subprocess.run(["git", "archive", f"--output={raw}", "HEAD"], cwd=repo / "app",
                   check=True, timeout=60)  # fmt: skip
    with pytest.raises(OperatorError, match="holds env file"):
        refuse_secrets(raw, ["config/prod.env"])
    target = ssh_hosts("ship-1")
    where = place(target, secrets.token_hex(4))
    host = target.connect()
    try:
        with pytest.raises(OperatorError, match=r"config/prod\.env"):
            ship_release(host, where, RELEASE, raw, timeout=120, env_files=["config/prod.env"])
    finally:
        host.close()
    assert not os.path.exists(where.releases_dir)  # refused before anything was made


class Slow(SshHost):
    """A host whose uploads trickle (a slow link): time for an interruption mid-transfer."""

    def feed(
        self, argv: list[str], chunks: Iterable[bytes], *, timeout: float, check: bool = True
    ) -> Result:  # type: ignore[override]
        def trickle() -> Iterator[bytes]:
            for chunk in chunks:
                time.sleep(0.1)
                yield chunk

        return super().feed(argv, trickle(), timeout=timeout, check=check)


def test_an_interrupted_ship_leaves_nothing_behind(
    ssh_hosts: Callable[[str], SshTarget], archive: Path
) -> None:
    from deploytools.interrupts import INTERRUPTS

    target = ssh_hosts("ship-2")
    where = place(target, secrets.token_hex(4))
    host = target.connect(Slow)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        with INTERRUPTS.installed(), INTERRUPTS.raising(), pytest.raises(KeyboardInterrupt):
            timer.start()
            ship_release(host, where, RELEASE, archive, timeout=120)
    finally:
        host.close()
    assert os.listdir(where.releases_dir) == []  # the partial upload was removed
