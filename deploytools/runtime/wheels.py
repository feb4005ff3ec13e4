"""A release virtualenv's packages shipped as wheels (``releases.wheels``), for hosts that
cannot reach a package index.

The control machine runs ``pip wheel -r <requirements>`` once per run and requirements file,
in the release's own files (a path or ``--find-links`` in the file means what it means on the
host), and packs the wheels into one tar beside the release archive (``Archives.once``). A host
that lacks the virtualenv receives that tar checked like the archive (``ship.upload_checked``),
and installs from it alone (``--no-index --find-links``); the wheels are removed after the
install: the virtualenv is what a release keeps, and a second copy of every package would
only take the host's disk.

Wheels are made for the interpreter that built them: a host whose base interpreter has another
implementation, minor version, platform or C library (or an older glibc) is refused before
anything is written there. No wheel is downloaded for another platform.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from deploytools.codetree import Archives
from deploytools.commands import venv as venv_cmd
from deploytools.config import EnvironmentSettings
from deploytools.errors import CommandError, OperatorError
from deploytools.hosts.base import Host

WHEEL_MODE = 0o640


@dataclass(frozen=True)
class Wheelhouse:
    """The wheels of one requirements file, as one tar on the control machine; ``made_on``:
    the platform of the interpreter that made them (``commands.venv.PLATFORM``'s fields)."""

    archive: Path
    wheels: tuple[str, ...]
    made_on: dict[str, str]


def builder(settings: EnvironmentSettings) -> str:
    """The interpreter that makes the wheels: the app's configured ``python`` when the control
    machine has it (a relative one from app_dir), else the one running deploytools."""
    configured = settings.python
    if configured is None:
        return sys.executable
    if os.path.basename(configured) == configured:  # a name found on PATH
        return shutil.which(configured) or sys.executable
    path = settings.path(settings.app_dir) / configured
    return str(path) if path.is_file() else sys.executable


def wheelhouse(
    archives: Archives,
    control: Host,
    settings: EnvironmentSettings,
    code: Path,
    requirements: bytes,
) -> Wheelhouse:
    """The wheels of ``requirements`` (the file ``releases.venv`` of the release archive
    ``code``), made on first use in this run; a requirement that cannot be made into a wheel
    is an ``OperatorError`` naming it, raised again for every host asking after it."""
    python = builder(settings)
    digest = hashlib.sha256(requirements).hexdigest()
    return archives.once(
        ("wheels", digest, python),
        lambda scratch: _make(control, settings, python, code, scratch),
    )


def check_platform(house: Wheelhouse, found: str, host: str, python: str, key: str) -> None:
    """Refuse a host whose ``python`` (its ``commands.venv.PLATFORM`` output ``found``) cannot
    install wheels made on ``house.made_on``."""
    try:
        there = {k: str(v) for k, v in json.loads(found).items()}
    except (ValueError, AttributeError):
        there = {}
    made = house.made_on
    differ = [f"{k} {there.get(k, '?')} (the wheels': {made[k]})"
              for k in ("python", "platform") if there.get(k) != made[k]]  # fmt: skip
    if not _libc_suffices(there.get("libc", ""), made["libc"]):
        differ.append(f"libc {there.get('libc') or '?'} (the wheels': {made['libc'] or 'none'})")
    if differ:
        raise OperatorError(
            f"{python} on {host} cannot install the release's wheels, made on the control "
            f"machine ({key}): it has {'; '.join(differ)}; nothing was written on {host}",
            f"give {host} the same Python minor version and platform as the control machine "
            "(or set the environment's python to such an interpreter there), or set "
            f"{key} = false so that {host} installs from its own package index",
        )


def _libc_suffices(there: str, made: str) -> bool:
    """No C library asked for (not Linux), or the same one, at least as new."""
    if not made:
        return True
    name, _, version = made.partition(" ")
    their_name, _, their_version = there.partition(" ")
    return their_name == name and _numbers(their_version) >= _numbers(version)


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _make(
    control: Host, settings: EnvironmentSettings, python: str, code: Path, scratch: Path
) -> Wheelhouse:
    tree, out = scratch / "tree", scratch / "wheels"
    tree.mkdir()
    with tarfile.open(code) as tar:  # our own git archive: the release's files, no links
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tree, filter="data")
        else:  # pragma: no cover - Python 3.11 before 3.11.4
            tar.extractall(tree)
    requirements = settings.releases.venv or ""
    try:
        control.run(venv_cmd.pip_wheel(python, requirements, str(out)), cwd=str(tree),
                    timeout=settings.timeouts.venv)  # fmt: skip
    except CommandError as exc:
        lines = exc.output.strip().splitlines() or [exc.problem]
        slow = " (or raise timeouts.venv)" if exc.returncode is None else ""
        raise OperatorError(
            f"cannot make the wheels of {requirements} on the control machine with {python} "
            f"(releases.wheels): {lines[-1].strip()}",
            f"fix {requirements} in the release, or make it buildable on the control machine"
            f"{slow}; no host was touched",
        ) from None
    made_on = json.loads(control.run(venv_cmd.platform_of(python),
                                     timeout=settings.timeouts.query).stdout)  # fmt: skip
    wheels = tuple(sorted(p.name for p in out.glob("*.whl")))
    archive = scratch / "wheels.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in wheels:
            member = tar.gettarinfo(out / name, arcname=name)
            member.mode, member.uid, member.gid, member.uname, member.gname = (
                WHEEL_MODE, 0, 0, "", "")  # fmt: skip
            with (out / name).open("rb") as body:
                tar.addfile(member, body)
    return Wheelhouse(archive, wheels, {k: str(v) for k, v in made_on.items()})
