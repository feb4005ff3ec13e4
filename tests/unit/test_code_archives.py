"""A run's release archives (``codetree.Archives``): made once for every host, then removed."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from deploytools.codetree import Archives, archived_file
from deploytools.hosts.base import Result
from deploytools.hosts.local import LocalHost

SKIP = ["var"]


class CountingControl(LocalHost):
    """This machine, counting the ``git archive`` runs asked of it."""

    def __init__(self) -> None:
        super().__init__("control")
        self.archives = 0

    def run(self, argv: Sequence[str], **kwargs: Any) -> Result:
        if list(argv)[:2] == ["git", "archive"]:
            self.archives += 1
        return super().run(argv, **kwargs)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    files: Mapping[str, str] = {"app.py": "print(1)\n", "requirements.txt": "httpx==0.27\n"}
    for name, text in {**files, "var/.keep": ""}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for argv in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "code"],
    ):
        subprocess.run(["git", *argv], cwd=root, check=True, capture_output=True)
    return root


def test_eight_hosts_asking_at_once_share_one_archive(repo: Path) -> None:
    control = CountingControl()
    with contextlib.closing(Archives()) as archives:

        def ask(_: int) -> Path:
            return archives.archive(control, repo, "r1", ".", SKIP)

        with ThreadPoolExecutor(8) as pool:
            paths = set(pool.map(ask, range(8)))

        assert control.archives == 1 and len(paths) == 1
        (archive,) = paths
        assert archived_file(archive, "requirements.txt") == b"httpx==0.27\n"
        assert archived_file(archive, "var/.keep") is None  # skipped: never in a release
        assert archived_file(archive, "missing.txt") is None
        other = archives.archive(control, repo, "r2", ".", SKIP)  # another release: its own
        assert other != archive and control.archives == 2
    assert not archive.exists() and not other.exists()  # the run closed: nothing left
