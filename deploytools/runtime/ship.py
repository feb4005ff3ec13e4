"""Releases reach every host without a registry: a process release's archive, a compose
release's images, each streamed from where it was made to a host that lacks it.

Process runtime (``ship_release``): the release's tar (``codetree.write_archive``) is streamed
to a temporary name in the host's releases directory, its size and SHA-256 computed there and
compared with the controller's, unpacked into ``releases/<id>.partial``, the shared directories
linked and the marker written, and only then renamed to ``releases/<id>``: a ship cut short
anywhere leaves no directory that ``has_release`` would take for a release.

Compose runtime (``ship_images``): ``docker image save`` on the host that built the images,
piped into ``docker image load`` on the host that lacks them (``pipe``: chunk by chunk, through
the controller's memory only as far as SSH's flow control lets it, no file anywhere), then the
image ids compared. ``docker save`` cannot leave out the layers a host already has, so the unit
of "already there" is the whole image: an image whose id the host has is never sent.
"""

from __future__ import annotations

import posixpath
import secrets
import tarfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from deploytools.codetree import CODE_DIR, CODE_FILE
from deploytools.commands import compose as docker_cmd
from deploytools.commands import fs
from deploytools.db.files import sha256
from deploytools.errors import CommandError, DeployFailure, DeployToolsError, OperatorError
from deploytools.hosts.base import CHUNK, Host
from deploytools.runtime.base import check_release
from deploytools.runtime.process import RELEASE_MARKER

Argv = list[str]


@dataclass(frozen=True)
class ReleasePlace:
    """Where a host keeps process releases (``ProcessRuntime.releases_dir``), and the app_dir
    whose shared (data) directories every release links back to, as the Build step does."""

    releases_dir: str
    app_dir: str
    shared_dirs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shipped:
    """What one host received: ``sent`` names what went over the wire (empty: it had all)."""

    host: str
    sent: list[str]
    present: list[str]
    bytes: int = 0
    seconds: float = 0.0
    ids: dict[str, str] = field(default_factory=dict)  # images: name -> id on the host


# -- process runtime: the release archive ---------------------------------------------------


def ship_release(
    target: Host,
    place: ReleasePlace,
    release: str,
    archive: Path,
    *,
    timeout: float,
    env_files: Sequence[str] = (),
    prepare: Callable[[str], object] | None = None,
) -> Shipped:
    """Make ``releases/<release>`` on ``target`` from ``archive`` (a tar on the controller), or
    say it is there already (its marker names it). ``env_files`` are paths relative to the
    archive's root that must not be in it (the environment's env file inside app_dir): a
    secret is never shipped, even from an archive made elsewhere. Each transfer and command
    is bounded by ``timeout``; an interruption stops the remote side and removes what this
    ship made. ``prepare`` completes the unpacked code directory (given its path, before the
    marker): e.g. linking the release's virtualenv (``ReleaseVenvs.provide``), which must not
    be built inside a directory that is renamed afterwards."""
    check_release(release)
    refuse_secrets(archive, env_files)
    final = f"{place.releases_dir}/{release}"
    if has_release(target, final, release):
        return Shipped(target.name, [], [release])
    started = time.monotonic()
    upload = f"{place.releases_dir}/.{release}.{secrets.token_hex(4)}.tar.part"
    partial = f"{final}.partial"
    target.makedirs(place.releases_dir, mode=CODE_DIR)
    try:
        size = upload_checked(target, archive, upload, f"release {release}", timeout=timeout)
        for stale in (partial, final):  # a ship or build cut short: never a release
            if target.exists(stale):  # an SFTP call; a removal is a remote command
                target.remove(stale)
        target.makedirs(partial, mode=CODE_DIR)
        target.run(fs.unpack(upload, partial), timeout=timeout)
        for shared in place.shared_dirs:
            target.makedirs(f"{place.app_dir}/{shared}")
            target.link_dir(f"{place.app_dir}/{shared}", f"{partial}/{shared}")
        if prepare is not None:
            prepare(partial)
        target.write_file(f"{partial}/{RELEASE_MARKER}", release.encode(), mode=CODE_FILE)
        target.run(fs.move(partial, final), timeout=timeout)
    except BaseException:
        _discard(target, partial)
        raise
    finally:
        _discard(target, upload)
    return Shipped(target.name, [release], [], size, time.monotonic() - started)


def upload_checked(target: Host, local: Path, upload: str, what: str, *, timeout: float) -> int:
    """Stream the file ``local`` to the new name ``upload`` on ``target`` and compare the
    SHA-256 computed there with ours; returns its size. The caller removes ``upload`` (on
    failure too) and uses it only after this returned."""
    size, digest = _measure(local)
    target.feed(fs.receive(upload), _read(local), timeout=timeout)
    got = sha256(target, upload, timeout)
    if got != digest:
        directory = posixpath.dirname(upload)
        raise DeployFailure(
            f"the archive of {what} arrived damaged on {target.name}: sha256 {got or '?'}; "
            f"sent {size} bytes, sha256 {digest} (nothing was unpacked)",
            f"ship again; if it recurs, check the disk and free space of {directory} on "
            f"{target.name}, and the network in between",
        )
    return size


def has_release(target: Host, directory: str, release: str) -> bool:
    """The release directory is complete: its marker (written last) names it."""
    try:
        return target.read_file(f"{directory}/{RELEASE_MARKER}") == release.encode()
    except OSError:
        return False


def refuse_secrets(archive: Path, env_files: Sequence[str]) -> None:
    """Refuse an archive holding an env file: one of ``env_files``, or any ``.env``."""
    forbidden = {PurePosixPath(name).as_posix() for name in env_files}
    with tarfile.open(archive) as tar:
        found = sorted(
            name
            for name in (PurePosixPath(m.name).as_posix() for m in tar)
            if name in forbidden or PurePosixPath(name).name == ".env"
        )
    if found:
        raise OperatorError(
            f"the release archive {archive} holds env file(s) {', '.join(found)}: secrets are"
            " never shipped in a release",
            "untrack them (git rm --cached FILE, then add them to .gitignore) and make the"
            " archive again; the hosts get their env file on its own, at mode 0600",
        )


def _measure(archive: Path) -> tuple[int, str]:
    import hashlib

    digest = hashlib.sha256()
    with archive.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return archive.stat().st_size, digest.hexdigest()


def _read(archive: Path) -> Iterator[bytes]:
    with archive.open("rb") as fh:
        yield from iter(lambda: fh.read(CHUNK), b"")


def _discard(target: Host, path: str) -> None:
    """Best effort: what a failed ship leaves is never taken for a release (no marker, not
    under the release's name), and the next ship removes it."""
    with suppress(DeployToolsError, OSError):
        target.remove(path)


# -- compose runtime: images ----------------------------------------------------------------


def ship_images(
    source: Host, target: Host, images: Sequence[str], *, timeout: float, docker: str = "docker"
) -> Shipped:
    """Give ``target`` the ``images`` that ``source`` has and it lacks (or has under another
    id), as ``source`` has them; checked by image id afterwards."""
    wanted = image_ids(source, images, timeout, docker)
    absent = [image for image in images if image not in wanted]
    if absent:
        raise DeployFailure(
            f"image(s) {', '.join(absent)} are not on {source.name}, where they are shipped from",
            f"build them on {source.name} first (invoke stack.build)",
        )
    had = image_ids(target, images, timeout, docker)
    missing = [image for image in images if had.get(image) != wanted[image]]
    present = [image for image in images if image not in missing]
    if not missing:
        return Shipped(target.name, [], present, ids=wanted)
    started = time.monotonic()
    sent = pipe(
        source,
        docker_cmd.save_images(missing, docker),
        target,
        docker_cmd.load_images(docker),
        timeout=timeout,
    )
    now = image_ids(target, missing, timeout, docker)
    wrong = [image for image in missing if now.get(image) != wanted[image]]
    if wrong:
        raise DeployFailure(
            f"after loading, {target.name} has {', '.join(wrong)} under another id than"
            f" {source.name} (or not at all)",
            f"look at {target.name}'s engine (docker image ls, its free space) and ship again",
        )
    return Shipped(target.name, missing, present, sent, time.monotonic() - started, wanted)


def image_ids(host: Host, images: Sequence[str], timeout: float, docker: str) -> dict[str, str]:
    """Image name -> id for those of ``images`` the host's engine has (one query each: one
    for all fails as a whole when one is missing)."""
    found = {}
    for image in images:
        done = host.run(docker_cmd.image_ids([image], docker), timeout=timeout, check=False)
        if done.ok and done.stdout.strip():
            found[image] = done.stdout.split()[0]
    return found


def pipe(source: Host, produce: Argv, target: Host, consume: Argv, *, timeout: float) -> int:
    """``produce`` on ``source`` | ``consume`` on ``target``, streamed in chunks; returns the
    bytes that went through. Both are bounded by ``timeout``; when both fail, the error
    names both (a producer that died cuts the consumer's input, and a consumer that died
    breaks the producer's pipe: either may be the cause)."""
    count = 0

    def counted(chunks: Iterator[bytes]) -> Iterator[bytes]:
        nonlocal count
        for chunk in chunks:
            count += len(chunk)
            yield chunk

    consumed = None
    try:
        with source.stream(produce, timeout=timeout) as chunks:
            consumed = target.feed(consume, counted(chunks), timeout=timeout, check=False)
    except CommandError as exc:
        if consumed is None or consumed.ok:
            raise
        raise DeployFailure(
            f"{exc}\nand on {target.name}, `{' '.join(consume)}` exited {consumed.returncode}:"
            f" {(consumed.stdout + consumed.stderr).strip()[-500:]}"
        ) from None
    if not consumed.ok:
        raise CommandError(consume, consumed.returncode, consumed.stdout + consumed.stderr,
                           target.name)  # fmt: skip
    return count
