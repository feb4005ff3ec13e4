"""A process release's own virtualenv (``releases.venv``): a rollback runs old code on the
packages it was deployed with, not on today's.

An environment is named by the sha256 of the requirements file's bytes and of the base
interpreter (its real path and full version): ``<state_dir>/<env>/venvs/<digest>``. Releases
whose file is the same share it; it is built once, by the first of them, and reused after.

It is built where it stays and only counts once its ``DONE`` file is written, last: console
scripts (``bin/celery``) carry the interpreter's absolute path in their first line, so a
virtualenv built elsewhere and renamed into place would break them. A build cut short (a failed
install, a timeout, a signal) is removed at once; one that could not be (a killed deploy) has
no ``DONE`` file, so it is never reused: the next build of that digest starts by removing it,
and retention removes it with the releases.

With ``releases.wheels`` a remote host installs from wheels the control machine made, shipped
to it only when it lacks the virtualenv (``runtime.wheels``), never from an index.

A release's ``.venv`` links to its environment (the app's interpreter is then
``<release>/.venv/bin/python``) and its ``USES`` file names it, so that retention can tell which
environments the kept releases use without reading links.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import secrets
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path, PurePosixPath

from deploytools.codetree import Archives
from deploytools.commands import fs
from deploytools.commands import venv as venv_cmd
from deploytools.config import EnvironmentSettings
from deploytools.errors import CommandError, DeployFailure, DeployToolsError, OperatorError
from deploytools.hosts.base import Host
from deploytools.runtime import wheels as wheels_of
from deploytools.runtime.wheels import Wheelhouse
from deploytools.targets import state_dir

LINK = ".venv"
USES = ".deploytools-venv"
DONE = ".deploytools-done"
MODE = 0o640
DIR_MODE = 0o750
PYTHONS = ("bin/python", "Scripts/python.exe")  # in a virtualenv: POSIX, Windows


class ReleaseVenvs:
    """The environment's virtualenvs on one host; ``app_dir`` as the host sees it."""

    def __init__(self, settings: EnvironmentSettings, host: Host, app_dir: str) -> None:
        self.settings = settings
        self.host = host
        self.app_dir = app_dir
        self.root = f"{state_dir(settings, host)}/venvs"
        self.requirements = PurePosixPath(settings.releases.venv or ".").as_posix()

    @property
    def key(self) -> str:
        return f"environments.{self.settings.name}.releases.venv"

    def requirements_of(self, data: bytes | None, release: str) -> bytes:
        """The requirements file's bytes (``data``, None when the release's code lacks it);
        asked before anything is written, so that a release without it changes nothing."""
        if data is None:
            raise OperatorError(
                f"release {release} has no file {self.requirements} ({self.key}): its "
                "virtualenv cannot be made",
                f"commit {self.requirements} in app_dir, or set {self.key} to the "
                "requirements file the release has (relative to app_dir)",
            )
        return data

    def base_python(self) -> str:
        """What the virtualenv is made on: the app's configured interpreter (``python``; a
        relative one from app_dir, when it is there: the release's own is the one being
        made), else the host's ``python3``."""
        configured = self.settings.python
        if configured is None:
            return "python3"
        bare = os.path.basename(configured) == configured  # found on PATH
        if bare or os.path.isabs(configured) or posixpath.isabs(configured):
            return configured
        in_app_dir = f"{self.app_dir}/{configured}"
        return in_app_dir if self.host.exists(in_app_dir) else "python3"

    def plan(self) -> list[str]:
        wheels = (
            f" from wheels made once on the control machine (pip wheel -r {self.requirements})"
            ", shipped checked and installed with --no-index --find-links"
            if self._ships_wheels() else ""
        )  # fmt: skip
        return [
            f"virtualenv from the release's {self.requirements} on {self.base_python()}: "
            f"{self.host.name}:{self.root}/<sha256 of both>, reused if there, else made "
            "(uv venv + uv pip install -r when uv is on PATH, else python -m venv + pip install "
            f"-r){wheels} and linked as <release>/{LINK}"
        ]

    def wheels_for(
        self, archives: Archives, control: Host, code: Path, requirements: bytes
    ) -> Wheelhouse | None:
        """With ``releases.wheels``, the wheels this host must install ``requirements`` from
        (the release archive ``code``'s file), made on the control machine and checked against
        the host's interpreter; None when it needs none (it has the virtualenv, or installs
        from its own index). Writes nothing on the host: call it before shipping."""
        if not self._ships_wheels():
            return None
        python = self.base_python()
        if self.host.exists(f"{self.root}/{self._digest(python, requirements)}/{DONE}"):
            return None
        house = wheels_of.wheelhouse(archives, control, self.settings, code, requirements)
        found = self.host.run(
            venv_cmd.platform_of(python), timeout=self.settings.timeouts.query, check=False
        )
        wheels_of.check_platform(house, found.stdout, self.host.name, python,
                                 f"environments.{self.settings.name}.releases.wheels")  # fmt: skip
        return house

    def provide(
        self, release: str, code: str, requirements: bytes, wheels: Wheelhouse | None = None
    ) -> dict[str, str]:
        """Link the code directory ``code`` to the virtualenv of ``requirements``, made first
        when there is none (from ``wheels`` alone when given); returns its path, and the
        installer (and wheels shipped) when it was made now."""
        python = self.base_python()
        name = self._digest(python, requirements)
        path = f"{self.root}/{name}"
        made = {}
        if not self.host.exists(f"{path}/{DONE}"):
            made["installer"] = self._make(release, path, python, code, wheels)
            if wheels is not None:
                made["wheels"] = f"{len(wheels.wheels)} wheels shipped"
        self.host.link_dir(path, f"{code}/{LINK}")
        self.host.write_file(f"{code}/{USES}", name.encode(), mode=MODE)
        return {"venv": path, **made}

    def sweep(self, codes: Iterable[str]) -> list[str]:
        """Remove the virtualenvs that none of the code directories ``codes`` uses (builds
        cut short included); returns their paths."""
        used = set()
        for code in codes:
            if self.host.exists(f"{code}/{USES}"):
                used.add(self.host.read_file(f"{code}/{USES}").decode(errors="replace").strip())
        removed = []
        for name in self.host.listdir(self.root):
            if name not in used:
                self.host.remove(f"{self.root}/{name}")
                removed.append(f"{self.root}/{name}")
        return removed

    # -- plumbing ---------------------------------------------------------------------------

    def _digest(self, python: str, requirements: bytes) -> str:
        try:
            found = self.host.run(
                venv_cmd.identity(python), timeout=self.settings.timeouts.query
            ).stdout
        except CommandError as exc:
            raise DeployFailure(
                f"cannot run {python} on {self.host.name} to make a release's virtualenv: {exc}",
                f"install python3 there, or set environments.{self.settings.name}.python to "
                "the interpreter the app runs on",
            ) from None
        return hashlib.sha256(found.encode() + b"\0" + requirements).hexdigest()

    def _make(
        self, release: str, path: str, python: str, code: str, wheels: Wheelhouse | None
    ) -> str:
        """Make the virtualenv at ``path``, removed again unless it is complete; the wheels
        shipped for it (a dot name beside it: retention sweeps one a kill left) removed after."""
        self.host.remove(path)  # a build cut short, never reused
        self.host.makedirs(self.root, mode=DIR_MODE)
        installer = "uv" if self._has_uv() else "pip"
        staging = f"{self.root}/.{posixpath.basename(path)}.{secrets.token_hex(4)}.wheels"
        try:
            found = None if wheels is None else self._receive(release, wheels, staging)
            if installer == "uv":
                self._run(release, installer, venv_cmd.uv_create(python, path), code)
                uv = venv_cmd.uv_install(path, self.requirements, found)
                self._run(release, installer, uv, code)
            else:
                self._run(release, installer, venv_cmd.venv_create(python, path), code)
                pip = venv_cmd.pip_install(self._python_in(path), self.requirements, found)
                self._run(release, installer, pip, code)
            done = {"installer": installer, "python": python, "requirements": self.requirements,
                    "release": release}  # fmt: skip
            self.host.write_file(f"{path}/{DONE}", json.dumps(done).encode(), mode=MODE)
        except BaseException:  # a failed install, a timeout, Ctrl-C: no half virtualenv stays
            self.host.remove(path)
            raise
        finally:
            for scratch in (staging, f"{staging}.tar"):
                with suppress(DeployToolsError, OSError):  # never hides the install's error
                    self.host.remove(scratch)
        return installer

    def _receive(self, release: str, wheels: Wheelhouse, staging: str) -> str:
        """Unpack ``wheels`` into ``staging`` on the host, checked on arrival; its path."""
        from deploytools.runtime.ship import upload_checked  # ship needs process, which us

        timeout = self.settings.timeouts.command
        upload_checked(self.host, wheels.archive, f"{staging}.tar",
                       f"the wheels of release {release}", timeout=timeout)  # fmt: skip
        self.host.makedirs(staging, mode=DIR_MODE)
        self.host.run(fs.unpack(f"{staging}.tar", staging), timeout=timeout)
        return staging

    def _ships_wheels(self) -> bool:
        """Wheels go to remote hosts only: the control machine reaches its own index."""
        return self.settings.releases.wheels and not self.host.local

    def _run(self, release: str, installer: str, argv: list[str], code: str) -> None:
        """One command of the build, in the release's code (a requirement may be a path
        relative to it), bounded by ``timeouts.venv``; the installer's environment is the
        host's own, never the env file's values."""
        timeout = self.settings.timeouts.venv
        try:
            self.host.run(argv, cwd=code, timeout=timeout)
        except CommandError as exc:
            slow = " (or raise timeouts.venv)" if exc.returncode is None else ""
            raise DeployFailure(
                f"cannot make the virtualenv of release {release} from {self.requirements} "
                f"with {installer} on {self.host.name}: {exc.problem}",
                f"fix {self.requirements} in the release ({self.key}){slow}; the running "
                "release was left as it was",
            ) from None

    def _has_uv(self) -> bool:
        try:
            return self.host.run(
                venv_cmd.uv_version(), check=False, timeout=self.settings.timeouts.query
            ).ok
        except CommandError:  # not on PATH (locally: not found at all)
            return False

    def _python_in(self, path: str) -> str:
        found = (f"{path}/{p}" for p in PYTHONS)
        return next((p for p in found if self.host.exists(p)), f"{path}/{PYTHONS[0]}")
