"""A process release's code: the tracked files of its commit, as ``git archive`` gives them.

Only what git tracks goes into a release: never the env files, backups, state directory or
earlier releases that sit beside the code when ``app_dir`` is the project root. A checkout with
uncommitted changes (``--allow-dirty``, the ``local`` environment) gives its tracked files as
they are now, through a scratch index: no stash, no ref moved, the real index untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from deploytools.commands import git
from deploytools.errors import CommandError, OperatorError
from deploytools.hosts.base import Host

if TYPE_CHECKING:  # tarfile (with lzma, bz2) only where an archive is read or made
    import tarfile

CODE_DIR = 0o750  # a release's directories (and executables): its owner and group, not everyone
CODE_FILE = 0o640
T = TypeVar("T")


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


def code_entries(control: Host, checkout: Path, app_dir: str, skip: Sequence[str]) -> list[Entry]:
    """``app_dir``'s tracked files in ``checkout`` on the ``control`` machine (directories
    first), minus the paths in ``skip`` and everything under them (relative to ``app_dir``)."""
    import tarfile

    with _archived(control, checkout, app_dir) as out, tarfile.open(out) as tar:
        return [_entry(tar, m) for m in tar if not _skipped(m.name, skip)]


def write_archive(
    control: Host, checkout: Path, app_dir: str, skip: Sequence[str], out: Path
) -> None:
    """The same files as ``code_entries``, as a tar at ``out`` that a host unpacks into a
    release: member by member (never the whole code in memory), with a release's modes (0750
    directories and executables, 0640 files) and no owner (``tar --no-same-owner``)."""
    import tarfile

    with _archived(control, checkout, app_dir) as source, tarfile.open(source) as tar:
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as release:
            for member in tar:
                if _skipped(member.name, skip):
                    continue
                entry = _entry(tar, member, read=False)
                member.mode = CODE_DIR if entry.data is None or entry.executable else CODE_FILE
                member.uid = member.gid = 0
                member.uname = member.gname = ""
                release.addfile(member, tar.extractfile(member) if member.isfile() else None)


class Archives:
    """A run's release archives on the control machine, each made once and shipped to every
    host that lacks the release (eight hosts made eight ``git archive`` runs, sixteen with a
    virtualenv), and whatever else a run makes once for every host (``once``: a release
    virtualenv's wheels); removed when the run closes it. Hosts rolled out at once wait for
    the one being made rather than making their own."""

    def __init__(self) -> None:
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._once: dict[tuple[str, ...], object] = {}  # what ``once`` made, or its error
        self._lock = threading.Lock()

    def archive(
        self, control: Host, checkout: Path, release: str, app_dir: str, skip: Sequence[str]
    ) -> Path:
        """The archive of ``release`` (``write_archive``'s), made on first use."""

        def make(place: Path) -> Path:
            out = place / f"{release}.tar"
            write_archive(control, checkout, app_dir, skip, out)
            return out

        return self.once(("archive", release, str(checkout), app_dir, *skip), make)

    def once(self, key: tuple[str, ...], make: Callable[[Path], T]) -> T:
        """What ``make`` returns given a new directory of the run's scratch, made on the first
        use of ``key`` (e.g. a release virtualenv's wheels); when it fails, every later use
        fails alike without making it again: one error for every host, said the same."""
        with self._lock:
            if key not in self._once:
                if self._scratch is None:
                    self._scratch = tempfile.TemporaryDirectory(prefix="deploytools-release-")
                place = Path(self._scratch.name) / f"once-{len(self._once)}"
                place.mkdir()
                try:
                    self._once[key] = make(place)
                except Exception as exc:  # a signal is no answer to keep
                    self._once[key] = exc
            found = self._once[key]
        if isinstance(found, Exception):
            raise found
        return cast(T, found)

    def close(self) -> None:
        with self._lock:
            if self._scratch is not None:
                self._scratch.cleanup()
            self._scratch, self._once = None, {}


def archived_file(archive: Path, path: str) -> bytes | None:
    """The bytes of file ``path`` in ``archive`` (None: no such file)."""
    import tarfile

    with tarfile.open(archive) as tar:
        try:
            member = tar.getmember(path)
        except KeyError:
            return None
        data = tar.extractfile(member) if member.isfile() else None
        return data.read() if data is not None else None


@contextlib.contextmanager
def _archived(control: Host, checkout: Path, app_dir: str) -> Iterator[str]:
    """``git archive`` of ``app_dir``'s tracked files into a temporary tar; yields its path."""
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
        yield out


def _skipped(name: str, skip: Sequence[str]) -> bool:
    path = name.rstrip("/")
    return any(path == s or path.startswith(f"{s}/") for s in skip)


def _entry(tar: tarfile.TarFile, member: tarfile.TarInfo, *, read: bool = True) -> Entry:
    """The member as an ``Entry`` (``read`` off: a file's data left empty, not read)."""
    path = member.name.rstrip("/")
    if member.isdir():
        return Entry(path, None)
    if member.isfile():
        data = tar.extractfile(member)
        assert data is not None  # a regular member always has a body
        body = data.read() if read else b""
        return Entry(path, body, executable=bool(member.mode & 0o111))
    raise OperatorError(
        f"{path} is a symbolic link in git: a release holds regular files only",
        f"commit the file itself instead of the link, or mark {path} export-ignore in "
        ".gitattributes",
    )
