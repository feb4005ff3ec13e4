"""The stack as plain supervised processes: the ``local`` environment and hosts without Docker.

Each service with a ``command`` runs detached in its own process group, with a PID file and a
log file under ``<state_dir>/<env>/run``; its environment is the env file plus ``RELEASE_ID``.
A later ``invoke`` run finds the processes again through the PID files. Stopping asks the group
to terminate and kills it after ``timeouts.stop``.

Placeholders in a command: ``{python}`` is the app's interpreter (``app_python``: the configured
``python``, else the release's or app_dir's ``.venv``, else the one running deploytools, ``python3``
on a remote host) and ``{NAME}`` any key of the env file, e.g. ``--port {PORT}``. deploytools'
own helpers (spawn, survey, the one-shot wrapper) use the standard library only and run on the
host's plain interpreter, never the app's.

A service declared ``oneshot`` (a migration, collectstatic) runs under a small Python wrapper
that writes its exit code beside its PID file: a later run, or one over SSH, can then tell a
one-shot that completed from one that failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from deploytools import platform
from deploytools.codetree import CODE_DIR, CODE_FILE, Archives, code_entries
from deploytools.commands import alembic, git
from deploytools.config import EnvironmentSettings
from deploytools.errors import CommandError, DeployFailure, OperatorError
from deploytools.flagclient import FLAGS_FILE_VAR
from deploytools.hosts.base import Host, Result
from deploytools.launch import Limits, environment_size, launch_problems, limits_for
from deploytools.runtime import venv
from deploytools.runtime.base import (
    EXITED,
    MISSING,
    RUNNING,
    ImageCheck,
    ServiceStatus,
    check_release,
    disk_full,
    free_said,
    free_space,
)
from deploytools.runtime.wheels import Wheelhouse
from deploytools.targets import flags_file, on_host, state_dir
from deploytools.templating import fill

POLL = 0.05
# Where a project's own virtualenv keeps its interpreter (POSIX, Windows).
VENV_PYTHONS = (".venv/bin/python", ".venv/Scripts/python.exe")
RELEASE_MARKER = ".deploytools-release"
KILL_GRACE = 5.0
LONGEST_RELEASE = "r" * 128  # a release id is at most this long (an image tag)
PRIVATE = 0o600  # PID files hold the argv ({NAME} fills in env values), logs what services print


class Launcher(Protocol):
    """Starts and signals detached process groups on one host."""

    def spawn(self, argv: list[str], cwd: str, env: dict[str, str], log: str, header: str) -> int:
        """Start ``argv`` in a new process group, output appended to ``log``; returns its pid."""
        ...

    def state(self, pid: int) -> tuple[bool, int | None]:
        """(running, exit code if known)."""
        ...

    def signal(self, pid: int, *, kill: bool) -> None: ...

    def run(self, argv: list[str], cwd: str, env: dict[str, str], timeout: float) -> Result:
        """Run ``argv`` to completion with ``env`` added to the host's environment."""
        ...

    def survey(self, programs: Sequence[str]) -> Survey:
        """The host's exec limits, its own environment's size and which ``programs`` it lacks."""
        ...


@dataclass(frozen=True)
class Survey:
    limits: Limits
    env_bytes: int  # the environment a child inherits before ours is added
    missing: list[str]


# Children started by this interpreter, so that their exit is reaped and its code known.
_children: dict[int, subprocess.Popen[bytes]] = {}


class LocalLauncher:
    """This machine, POSIX or Windows, through ``deploytools.platform``."""

    def __init__(self, host: Host) -> None:
        self.host = host  # this machine, for commands run to completion

    def spawn(self, argv: list[str], cwd: str, env: dict[str, str], log: str, header: str) -> int:
        with open(log, "ab", opener=_private) as out:
            os.chmod(log, PRIVATE)  # a log left wider before; os.fchmod is POSIX-only (< 3.13)
            out.write(header.encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                **platform.detached_popen_kwargs(),
            )
        _children[proc.pid] = proc
        return proc.pid

    def state(self, pid: int) -> tuple[bool, int | None]:
        proc = _children.get(pid)
        if proc is not None:
            code = proc.poll()
            return code is None, code
        return platform.pid_alive(pid), None

    def signal(self, pid: int, *, kill: bool) -> None:
        platform.terminate_group(pid, kill=kill)

    def run(self, argv: list[str], cwd: str, env: dict[str, str], timeout: float) -> Result:
        return self.host.run(argv, env=env, cwd=cwd, timeout=timeout, check=False)

    def survey(self, programs: Sequence[str]) -> Survey:
        limits = limits_for(sys.platform, platform.arg_max())
        inherited = environment_size(os.environ)
        return Survey(limits, inherited, [p for p in programs if shutil.which(p) is None])


def _private(path: str, flags: int) -> int:
    """``open``'s opener for logs: a new log is readable by its owner only."""
    return os.open(path, flags, PRIVATE)


# Run by the remote python3: start the child detached, print its pid (_RUN: run it, relay its
# exit code). The spec (with the env file's secrets) arrives on stdin, never in an argv that
# `ps` would show. The log is private, as LocalLauncher makes it.
_SPAWN = """\
import json, os, subprocess, sys
spec = json.load(sys.stdin)
with open(spec["log"], "ab", opener=lambda path, flags: os.open(path, flags, 0o600)) as out:
    os.fchmod(out.fileno(), 0o600)
    out.write(spec["header"].encode())
    out.flush()
    proc = subprocess.Popen(spec["argv"], cwd=spec["cwd"], env={**os.environ, **spec["env"]},
        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
print(proc.pid)
"""
_RUN = """\
import json, os, subprocess, sys
spec = json.load(sys.stdin)
env = {**os.environ, **spec["env"]}
sys.exit(subprocess.call(spec["argv"], cwd=spec["cwd"], env=env, stdin=subprocess.DEVNULL))
"""
# Runs a one-shot's argv (after the exit file's path) and records how it ended, atomically.
_ONESHOT = """\
import os, subprocess, sys
try:
    code = subprocess.call(sys.argv[2:])
except OSError as exc:
    print(f"deploytools: cannot run {sys.argv[2]}: {exc}", flush=True)
    code = 127
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(str(code))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
sys.exit(code)
"""
_SURVEY = """\
import json, os, shutil, sys
programs = json.load(sys.stdin)
size = sum(len(os.fsencode(k)) + len(os.fsencode(v)) + 10 for k, v in os.environ.items())
print(json.dumps({"arg_max": os.sysconf("SC_ARG_MAX"), "platform": sys.platform,
    "env_bytes": size, "missing": [p for p in programs if shutil.which(p) is None]}))
"""


class PosixLauncher:
    """A POSIX host reached only through ``Host.run`` (e.g. over SSH): python3 and kill.

    ``query`` bounds each small call (spawn, state, signal, survey): one that hangs on a host
    is an error after that long, not a stuck run.
    """

    def __init__(self, host: Host, *, query: float, python: str = "python3") -> None:
        self.host = host
        self.python = python
        self.query = query

    def spawn(self, argv: list[str], cwd: str, env: dict[str, str], log: str, header: str) -> int:
        spec = {"argv": argv, "cwd": cwd, "env": env, "log": log, "header": header}
        done = self.host.run(
            [self.python, "-c", _SPAWN], stdin=json.dumps(spec), timeout=self.query
        )
        return int(done.stdout.strip().splitlines()[-1])

    def state(self, pid: int) -> tuple[bool, int | None]:
        if not self.host.run(["kill", "-0", str(pid)], check=False, timeout=self.query).ok:
            return False, None
        try:  # an orphan that exited but was not reaped yet still answers kill -0
            stat = self.host.read_file(f"/proc/{pid}/stat")
        except OSError:
            return True, None
        return stat.rpartition(b")")[2].split()[:1] not in ([b"Z"], [b"X"]), None

    def signal(self, pid: int, *, kill: bool) -> None:
        sig = "-KILL" if kill else "-TERM"
        self.host.run(["kill", sig, "--", f"-{pid}"], check=False, timeout=self.query)

    def run(self, argv: list[str], cwd: str, env: dict[str, str], timeout: float) -> Result:
        spec = json.dumps({"argv": argv, "cwd": cwd, "env": env})
        done = self.host.run([self.python, "-c", _RUN], stdin=spec, timeout=timeout, check=False)
        return Result(argv, done.returncode, done.stdout, done.stderr, done.duration)

    def survey(self, programs: Sequence[str]) -> Survey:
        done = self.host.run(
            [self.python, "-c", _SURVEY], stdin=json.dumps(list(programs)), timeout=self.query
        )
        found = json.loads(done.stdout)
        limits = limits_for(str(found["platform"]), int(found["arg_max"]))
        return Survey(limits, int(found["env_bytes"]), list(found["missing"]))


def _found_anywhere(program: str) -> bool:
    """A bare name (looked up on PATH) or an absolute path: either can be checked anywhere."""
    bare = os.path.basename(program) == program
    return bare or os.path.isabs(program) or posixpath.isabs(program)


class ProcessRuntime:
    kind = "process"

    def __init__(
        self,
        settings: EnvironmentSettings,
        host: Host,
        env_values: Mapping[str, str],
        *,
        control: Host | None = None,
        launcher: Launcher | None = None,
        archives: Archives | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.host = host
        self.control = control if control is not None else host
        self.archives = archives  # the run's (the Site's); None: one made for each ship
        self.env_values = dict(env_values)
        self.launcher: Launcher = launcher or (
            LocalLauncher(host)
            if host.local
            else PosixLauncher(host, query=settings.timeouts.query)
        )
        self.python = sys.executable if host.local else "python3"
        self.commands = {n: s.command for n, s in settings.services.items() if s.command}
        self.oneshot = {n for n, s in settings.services.items() if s.command and s.oneshot}
        self.run_dir = f"{state_dir(settings, host)}/run"
        self.releases_dir = f"{state_dir(settings, host)}/releases"
        self.app_dir = on_host(settings, settings.app_dir, host)
        self.venvs = venv.ReleaseVenvs(settings, host, self.app_dir)
        self._clock = clock
        self._sleep = sleep
        self._survey: Survey | None = None  # the host's exec limits, asked once per run
        self._pythons: dict[str, str] = {}  # release directory -> the app's interpreter there
        self._surveyed: set[str] = set()
        # (release, checkout) -> the wheels this host needs: asked before the build ships
        self._wheels: dict[tuple[str, str], Wheelhouse | None] = {}

    def check(self) -> None:
        if not self.commands:
            raise OperatorError(
                f"environment {self.settings.name!r} runs processes but no service has a command",
                f"add environments.{self.settings.name}.services.NAME.command to deploy.toml",
            )
        if not self.host.exists(self.app_dir):
            raise OperatorError(
                f"app_dir {self.app_dir} does not exist on {self.host.name}",
                f"set environments.{self.settings.name}.app_dir to the application's directory",
            )
        problems = self.launch_problems(LONGEST_RELEASE)
        if problems:
            raise OperatorError(
                f"the services could not start on {self.host.name}: " + "; ".join(problems),
                f"fix {self.settings.env_file} or environments.{self.settings.name}.services "
                "(nothing was changed)",
            )

    def launch_problems(self, release: str, services: Sequence[str] = ()) -> list[str]:
        """Why a service of ``release`` could not be started here (its program is missing,
        its command line and environment exceed the host's exec limits), before anything
        running is stopped; one ``survey`` of the host answers for every service."""
        names = self.require_services(services)
        argvs = {name: self.argv(name, release) for name in names}
        # A relative path is relative to the release's code, which may not be built yet.
        programs = {a[0] for a in argvs.values() if a and _found_anywhere(a[0])}
        if self._survey is None or not programs <= self._surveyed:
            self._survey, self._surveyed = self.launcher.survey(sorted(programs)), programs
        survey = self._survey
        env = self._environment(release)
        problems = [
            f"{n}: program {a[0]!r} not found"
            for n, a in argvs.items()
            if a and a[0] in survey.missing
        ]
        for name, argv in argvs.items():
            problems += [
                f"{name}: {p}"
                for p in launch_problems(argv, env, survey.limits, base_env=survey.env_bytes)
            ]
        return problems

    def services(self) -> list[str]:
        return list(self.commands)

    def one_shots(self) -> set[str]:
        return set(self.oneshot)

    def require_services(self, names: Sequence[str]) -> list[str]:
        unknown = [n for n in names if n not in self.commands]
        if unknown:
            raise OperatorError(
                f"unknown service(s) {', '.join(unknown)} in environment {self.settings.name}",
                f"use one of: {', '.join(self.commands)}",
            )
        return list(names) or list(self.commands)

    # A release is the tracked files of its commit (git archive) under releases/<id>, with the
    # shared (data) directories linked back to app_dir: a rollback runs the old code on the
    # same data. The env file never goes in: the processes get its values in their environment.
    # With releases.venv, its .venv links to the virtualenv of its requirements (runtime.venv).
    def build(self, release: str, source: Path | None = None) -> dict[str, str]:
        check_release(release)
        checkout = source or self.settings.root
        if not self.host.local:
            return self._ship(release, checkout)
        entries = code_entries(self.control, checkout, self.settings.app_dir, self.not_code())
        wants_venv = self.settings.releases.venv is not None
        requirements = b""
        if wants_venv:
            found = next((e for e in entries if e.path == self.venvs.requirements), None)
            requirements = self.venvs.requirements_of(found.data if found else None, release)
        target = self._code_dir(release)
        self.host.remove(target)  # a build cut short left no marker: start again
        self.host.makedirs(self.releases_dir, mode=CODE_DIR)
        self.host.makedirs(target, mode=CODE_DIR)
        for entry in entries:  # git archive lists a directory before what it holds
            path = f"{target}/{entry.path}"
            if entry.data is None:
                self.host.makedirs(path, mode=CODE_DIR)
            else:
                self.host.write_file(path, entry.data, CODE_DIR if entry.executable else CODE_FILE)
        for shared in self.settings.shared_dirs:
            self.host.makedirs(f"{self.app_dir}/{shared}")
            self.host.link_dir(f"{self.app_dir}/{shared}", f"{target}/{shared}")
        made = self.venvs.provide(release, target, requirements) if wants_venv else {}
        self.host.write_file(f"{target}/{RELEASE_MARKER}", release.encode(), mode=CODE_FILE)
        return {"code": target, **made}

    def prepare_build(self, release: str) -> dict[str, str]:
        """``releases.wheels`` on a host that lacks the release's virtualenv: the wheels made
        now (once per run on the control machine, for every host) and checked against the
        host's interpreter, before the build stage ships anything to any host."""
        if not self.settings.releases.wheels or self.host.local or self.archives is None:
            return {}
        wheels = self._inputs(self.archives, release, self.settings.root)[2]
        return {"wheels": f"{len(wheels.wheels)} made"} if wheels else {}

    def _inputs(
        self, archives: Archives, release: str, checkout: Path
    ) -> tuple[Path, bytes, Wheelhouse | None]:
        """The release's archive, its requirements file (empty without ``releases.venv``) and
        the wheels this host needs (``ReleaseVenvs.wheels_for``: asked once per run)."""
        from deploytools.codetree import archived_file

        archive = archives.archive(
            self.control, checkout, release, self.settings.app_dir, self.not_code()
        )
        if self.settings.releases.venv is None:
            return archive, b"", None
        found = archived_file(archive, self.venvs.requirements)
        requirements = self.venvs.requirements_of(found, release)
        key = (release, str(checkout))
        if key not in self._wheels:
            self._wheels[key] = self.venvs.wheels_for(archives, self.control, archive, requirements)
        return archive, requirements, self._wheels[key]

    def _ship(self, release: str, checkout: Path) -> dict[str, str]:
        """A host that is not this machine gets the release as one archive (made once per run,
        ``codetree.Archives``), its checksum checked there before it is unpacked, and renamed
        into place only when whole (``runtime.ship``); a host that has it already is left as
        it is."""
        from deploytools.runtime.ship import ReleasePlace, ship_release

        wants_venv = self.settings.releases.venv is not None
        made: dict[str, str] = {}
        place = ReleasePlace(self.releases_dir, self.app_dir, tuple(self.settings.shared_dirs))
        store = (
            contextlib.nullcontext(self.archives)
            if self.archives is not None
            else contextlib.closing(Archives())
        )
        with store as archives:
            archive, requirements, wheels = self._inputs(archives, release, checkout)

            def prepare(code: str) -> None:
                made.update(self.venvs.provide(release, code, requirements, wheels))

            shipped = ship_release(
                self.host, place, release, archive,
                timeout=self.settings.timeouts.command,
                env_files=[p for p in [self._in_app_dir(self.settings.env_file)] if p],
                prepare=prepare if wants_venv else None,
            )  # fmt: skip
        said = "already there" if shipped.present else f"{shipped.bytes} bytes shipped"
        return {"code": self._code_dir(release), "shipped": said, **made}

    def _in_app_dir(self, name: str) -> str | None:
        """Config path ``name`` relative to app_dir when it is inside it, else None."""
        app = self.settings.path(self.settings.app_dir).resolve()
        path = self.settings.path(name).resolve()
        inside = path != app and path.is_relative_to(app)
        return path.relative_to(app).as_posix() if inside else None

    def not_code(self) -> list[str]:
        """What a release never holds, relative to app_dir: the shared data directories, and
        the env file, state and backup directories when they are inside app_dir (tracked by
        mistake, they still stay out)."""
        settings = self.settings
        names = (settings.env_file, settings.state_dir, settings.database.backup_dir)
        inside = [p for p in map(self._in_app_dir, names) if p]
        own_venv = [venv.LINK, venv.USES] if settings.releases.venv is not None else []
        return [*settings.shared_dirs, *inside, RELEASE_MARKER, *own_venv]

    def has_release(self, release: str) -> bool:
        return self.host.exists(f"{self._code_dir(release)}/{RELEASE_MARKER}")

    def image_check(self, release: str, recorded: Mapping[str, str]) -> ImageCheck:
        """A release is its code directory: there or not, nothing to tag."""
        return ImageCheck(missing=[] if self.has_release(release) else [self._code_dir(release)])

    def retag(self, images: Mapping[str, str]) -> None:
        """Never asked: ``image_check`` has nothing to re-tag for processes."""

    def remove_release(self, release: str) -> list[str]:
        """The release's code, and the virtualenvs no release left here uses."""
        self.host.remove(self._code_dir(release))
        left = (self._code_dir(r) for r in self.stored_releases())
        return [self._code_dir(release), *self.venvs.sweep(left)]

    def stored_releases(self) -> list[str]:
        """Every directory under releases/, a build cut short (no marker) included; release
        ids start with their UTC stamp, so sorted is oldest first."""
        return self.host.listdir(self.releases_dir)

    def plan_build(self, release: str) -> list[str]:
        shared = ", ".join(self.settings.shared_dirs) or "none"
        archive = " ".join(git.archive("HEAD", "<temp>.tar"))
        return [
            f"{archive} in {self.settings.app_dir} (its tracked files only; with uncommitted"
            f" changes allowed, their working-tree version) -> {self.host.name}:"
            f"{self._code_dir(release)}, mode 0750 (shared with every release: {shared})",
            *(self.venvs.plan() if self.settings.releases.venv is not None else []),
        ]

    def plan_up(self, release: str, services: Sequence[str] = ()) -> list[str]:
        where = f"{self.host.name}:{self._cwd(release)}"
        return [
            f"(re)start {name} on release {release} in {where}: "
            f"{shlex.join(self.argv(name, release))}"
            for name in self.require_services(services)
        ]

    def argv(self, service: str, release: str | None = None) -> list[str]:
        values = {**self.env_values, "python": self.app_python(release)}
        where = f"environments.{self.settings.name}.services.{service}.command"
        return [fill(part, values, where=where) for part in self.commands[service]]

    def up(self, release: str, services: Sequence[str] = ()) -> None:
        check_release(release)
        self.check()
        names = self.require_services(services)
        # check() above: programs there and the launch within the host's limits, and below,
        # bad placeholders: all before anything is stopped.
        argvs = {name: self.argv(name, release) for name in names}
        self.host.makedirs(self.run_dir)
        self._stop(names)
        env = self._environment(release)
        for name in names:
            stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            header = f"--- deploytools: {name} release {release} starting at {stamp} ---\n"
            argv = argvs[name]
            if name in self.oneshot:
                self.host.remove(self._exitfile(name))
                argv = [self.python, "-c", _ONESHOT, self._exitfile(name), *argv]
            try:
                cwd = self._cwd(release)
                pid = self.launcher.spawn(argv, cwd, env, self._log(name), header)
            except (OSError, CommandError) as exc:
                raise DeployFailure(
                    f"cannot start {name} on {self.host.name} ({argvs[name][0]}): {exc}",
                    f"check environments.{self.settings.name}.services.{name}.command",
                ) from None
            record = {"pid": pid, "release": release, "argv": argvs[name], "started": time.time()}
            self.host.write_file(self._pidfile(name), json.dumps(record).encode(), mode=PRIVATE)

    def stop(self, services: Sequence[str] = ()) -> None:
        self._stop(self.require_services(services))

    def down(self) -> None:
        self.stop()

    def status(self) -> dict[str, ServiceStatus]:
        result = {}
        for name in self.commands:
            record = self._record(name)
            if record is None:
                result[name] = ServiceStatus(name, MISSING)
                continue
            pid = int(record["pid"])
            running, code = self.launcher.state(pid)
            if not running and code is None:
                code = self._exit_code(name)
            result[name] = ServiceStatus(
                name,
                RUNNING if running else EXITED,
                exit_code=code,
                release=str(record.get("release", "")),
                detail=f"pid {pid}",
                instance=str(pid),
            )
        return result

    def _exit_code(self, service: str) -> int | None:
        """What a one-shot's wrapper recorded; None for a service that has none."""
        if service not in self.oneshot or not self.host.exists(self._exitfile(service)):
            return None
        text = self.host.read_file(self._exitfile(service)).decode(errors="replace").strip()
        return int(text) if text.lstrip("-").isdigit() else None

    def logs(self, service: str, lines: int = 50) -> str:
        self.require_services([service])
        path = self._log(service)
        if not self.host.exists(path):
            return ""
        text = self.host.read_file(path).decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:]) + "\n"

    def exec(self, service: str, command: Sequence[str]) -> Result:
        """Run ``command`` with the service's environment and working directory."""
        self.require_services([service])
        release = str((self._record(service) or {}).get("release", ""))
        cwd = self._cwd(release) if release else self.app_dir
        env = self._environment(release)
        return self.launcher.run(list(command), cwd, env, self.settings.timeouts.command)

    def current_release(self) -> str | None:
        running = [s.release for s in self.status().values() if s.state == RUNNING and s.release]
        return max(set(running), key=running.count) if running else None

    def run_alembic(
        self, release: str | None, args: Sequence[str], env: Mapping[str, str]
    ) -> Result:
        """``python -m alembic ARGS`` on the app's interpreter (``check_migrations``), in the
        release's directory (None: app_dir, the code as it stands: the checkout locally)."""
        cwd = self._cwd(release) if release else self.app_dir
        config = args[1] if args[:1] == ["-c"] else None
        if config is not None and not self.host.exists(f"{cwd}/{config}"):
            raise OperatorError(
                f"no {config} in {cwd} on {self.host.name}: alembic runs there",
                "deploy a release that carries it, or set database.alembic_ini in "
                "config/deploy.toml to the project's alembic.ini (inside app_dir)",
            )
        values = self._environment(release) if release else dict(self.env_values)
        argv = alembic.program(args, python=self.app_python(release))
        return self.launcher.run(argv, cwd, {**values, **env}, self.settings.timeouts.command)

    def check_migrations(self) -> str:
        """The app's interpreter for the code as it stands (app_dir): it must exist."""
        return self.app_python(None)

    def app_python(self, release: str | None) -> str:
        """The interpreter the app's code of ``release`` runs on (None: app_dir's code).

        The configured ``python`` (a bare name: found on PATH; relative: from the release's
        directory, then app_dir; one that is in neither is refused), else the release's own
        ``.venv``, else app_dir's, else ``self.python``. Asked once per directory and run.
        """
        cwd = self._cwd(release) if release else self.app_dir
        if cwd not in self._pythons:
            self._pythons[cwd] = self._find_python(cwd)
        return self._pythons[cwd]

    def _find_python(self, cwd: str) -> str:
        configured = self.settings.python
        if configured is not None and os.path.basename(configured) == configured:
            return configured
        dirs = dict.fromkeys([cwd, self.app_dir])  # the release's own first
        if configured is None:
            candidates = [f"{d}/{v}" for d in dirs for v in VENV_PYTHONS]
        elif os.path.isabs(configured) or posixpath.isabs(configured):
            candidates = [configured]
        else:
            candidates = [f"{d}/{configured}" for d in dirs]
        found = next((p for p in candidates if self.host.exists(p)), None)
        if found is not None:
            return found
        if configured is None:
            return self.python
        raise OperatorError(
            f"python {' or '.join(candidates)} does not exist on {self.host.name}",
            f"set environments.{self.settings.name}.python to the app's interpreter (e.g. "
            ".venv/bin/python, relative to the release's directory or app_dir), or remove it",
        )

    def unreachable(self, timeout: float) -> str | None:
        """Processes need no engine; the host's own connection is bounded by its timeouts."""
        return None

    def out_of_space(self) -> str | None:
        def place() -> str:
            free = free_space(self.host, self.app_dir, self.settings.timeouts.query)
            return f"{self.app_dir}: {free_said(free)}"

        return disk_full(self, self.host.name, place)

    # -- plumbing ---------------------------------------------------------------------------

    def _environment(self, release: str) -> dict[str, str]:
        """What a service gets on top of the host's environment: the flag state's path (the
        env file may name another) for ``deploytools.flagclient``."""
        flags = {FLAGS_FILE_VAR: flags_file(self.settings, self.host)}
        return {**flags, **self.env_values, "RELEASE_ID": release, "PYTHONUNBUFFERED": "1"}

    def _code_dir(self, release: str) -> str:
        return f"{self.releases_dir}/{release}"

    def _cwd(self, release: str) -> str:
        """The release's own code when it was built; app_dir itself otherwise (stack.up)."""
        return self._code_dir(release) if self.has_release(release) else self.app_dir

    def _pidfile(self, service: str) -> str:
        return f"{self.run_dir}/{service}.pid"

    def _log(self, service: str) -> str:
        return f"{self.run_dir}/{service}.log"

    def _exitfile(self, service: str) -> str:
        return f"{self.run_dir}/{service}.exit"

    def _record(self, service: str) -> dict[str, Any] | None:
        path = self._pidfile(service)
        if not self.host.exists(path):
            return None
        try:
            record = json.loads(self.host.read_file(path))
        except ValueError:
            return None
        return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None

    def _stop(self, services: Sequence[str]) -> None:
        """Terminate the services' groups all at once (a worker's warm shutdown takes seconds:
        one after the other they add up), wait up to ``timeouts.stop``, then kill; forget the
        PID files."""
        pids = {name: int(r["pid"]) for name in services if (r := self._record(name)) is not None}
        alive = {name: pid for name, pid in pids.items() if self.launcher.state(pid)[0]}
        for pid in alive.values():
            self.launcher.signal(pid, kill=False)
        deadline = self._clock() + self.settings.timeouts.stop
        for name, pid in alive.items():
            if not self._gone(pid, deadline - self._clock()):
                self.launcher.signal(pid, kill=True)
                if not self._gone(pid, KILL_GRACE):
                    raise DeployFailure(
                        f"{name} (pid {pid}) on {self.host.name} survived SIGKILL",
                        "look at the process (uninterruptible I/O?) and stop it by hand",
                    )
        for pid in pids.values():
            _children.pop(pid, None)
        for name in services:
            self.host.remove(self._pidfile(name))
            self.host.remove(self._exitfile(name))

    def _gone(self, pid: int, timeout: float) -> bool:
        deadline = self._clock() + timeout
        while self.launcher.state(pid)[0]:
            if self._clock() >= deadline:
                return False
            self._sleep(POLL)
        return True
