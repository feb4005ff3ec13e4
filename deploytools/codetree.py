"""A process release's code: the tracked files of its commit, as ``git archive`` gives them.

Only what git tracks goes into a release: never the env files, backups, state directory or
earlier releases that sit beside the code when ``app_dir`` is the project root. A checkout with
uncommitted changes (``--allow-dirty``, the ``local`` environment) gives its tracked files as
they are now, through a scratch index: no stash, no ref moved, the real index untouched.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deploytools.commands import git
from deploytools.errors import CommandError, OperatorError
from deploytools.hosts.base import Host


@dataclass(frozen=True)
class Entry:
    """A directory (``data`` None) or a file of the code, its path relative to ``app_dir``."""

    path: str
    data: bytes | None
    executable: bool = False


def tree_of(control: Host, checkout: Path) -> str:
    """``HEAD`` when the checkout has no uncommitted change to a tracked file, else the tree
    of its tracked files as they are in the working tree (untracked files never count)."""
    local, repo = control, str(checkout)
    if not local.run(git.status_porcelain(), cwd=repo).stdout.strip():
        return "HEAD"
    with tempfile.TemporaryDirectory(prefix="deploytools-index-") as scratch:
        env = {"GIT_INDEX_FILE": os.path.join(scratch, "index")}
        local.run(git.read_tree("HEAD"), cwd=repo, env=env)
        local.run(git.add_tracked(), cwd=repo, env=env)
        return local.run(git.write_tree(), cwd=repo, env=env).stdout.strip()


def code_entries(
    control: Host, checkout: Path, app_dir: str, skip: Sequence[str]
) -> list[Entry]:
    """``app_dir``'s tracked files in ``checkout`` on the ``control`` machine (directories
    first), minus the paths in ``skip`` and everything under them (relative to ``app_dir``)."""
    where = checkout / app_dir
    if not where.is_dir():
        raise OperatorError(
            f"app_dir {app_dir!r} is not a directory of {checkout}",
            "set app_dir to the directory (relative to the project root) that holds the code",
        )
    tree = tree_of(control, checkout)
    with tempfile.TemporaryDirectory(prefix="deploytools-code-") as scratch:
        out = os.path.join(scratch, "code.tar")
        try:
            control.run(git.archive(tree, out), cwd=str(where))
        except CommandError as exc:
            raise OperatorError(
                f"cannot take the tracked files of {app_dir!r} from git in {checkout}: "
                f"{exc.output.strip()[:300]}",
                "commit the application's code (a release holds only what git tracks)",
            ) from None
        with tarfile.open(out) as tar:
            return [_entry(tar, m) for m in tar if not _skipped(m.name, skip)]


def _skipped(name: str, skip: Sequence[str]) -> bool:
    path = name.rstrip("/")
    return any(path == s or path.startswith(f"{s}/") for s in skip)


def _entry(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Entry:
    path = member.name.rstrip("/")
    if member.isdir():
        return Entry(path, None)
    if member.isfile():
        data = tar.extractfile(member)
        assert data is not None  # a regular member always has a body
        return Entry(path, data.read(), executable=bool(member.mode & 0o111))
    raise OperatorError(
        f"{path} is a symbolic link in git: a release holds regular files only",
        f"commit the file itself instead of the link, or mark {path} export-ignore in "
        ".gitattributes",
    )
