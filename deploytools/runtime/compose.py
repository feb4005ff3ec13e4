"""The stack as ``docker compose`` (v2) services, driven through a ``Host`` with argv lists.

Images are tagged with the release id: the compose files name their image
``${IMAGE_NAME}:${RELEASE_ID}``, and every command gets ``RELEASE_ID``, ``IMAGE_NAME`` and
``ENV_FILE`` in its environment, and ``FLAGS_DIR``: the directory of the feature flags' state
file, which the compose files mount read-only into the services that read flags. A rollback
therefore runs ``up`` with the old id and reuses the old image without building;
``has_release`` says whether those images are still there.

``ENV_FILE`` (and ``--env-file``) is not the operator's env file but a copy in the state
directory that compose reads exactly as python-dotenv reads the original (``envcompose``).
The containers ``up`` starts carry the environment's name in a label, from a compose file of
our own added last; a project holding another environment's containers is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import takewhile
from pathlib import Path
from typing import Any

from deploytools.commands import alembic
from deploytools.commands import compose as cmd
from deploytools.config import ComposeSettings, EnvironmentSettings, ServiceSettings
from deploytools.env import compose as envcompose
from deploytools.env import file as envfile
from deploytools.errors import CommandError, DeployFailure, OperatorError
from deploytools.hosts.base import Host, Result
from deploytools.runtime.base import (
    MB,
    MISSING,
    RUNNING,
    ImageCheck,
    ServiceStatus,
    check_release,
    disk_full,
    free_said,
    free_space,
    log_tail,
    see_logs,
)
from deploytools.targets import (
    compose_env_file,
    compose_project,
    compose_settings,
    flags_dir,
    inside,
    on_host,
    state_dir,
)

INSTALL_DOCKER = (
    "install Docker Engine (Debian: apt-get install docker.io) and make `docker` found on PATH"
)
INSTALL_COMPOSE = (
    "install the compose v2 plugin (package docker-compose-plugin, or the docker-compose v2 "
    "binary copied to ~/.docker/cli-plugins/docker-compose)"
)
# RELEASE_ID while the configuration is read once per run: an image named with it is a release's
# own (``images``), whatever release is asked for later.
ANY_RELEASE = "deploytools-any-release"
START_DOCKER = "start the Docker daemon (systemctl start docker, or dockerd) and check DOCKER_HOST"
LABELS_FILE = "compose.labels.yml"
ENV_LABEL = "io.deploytools.environment"
# A deploy's release tag names its environment: release-<env>-<UTC stamp>-<sha>.
RELEASE_TAG = re.compile(r"release-(?P<env>[a-z][a-z0-9_-]{0,31})-\d{8}T\d{6}Z-")
# What `up` says when the target of a service_completed_successfully condition fails.
_NOT_COMPLETED = re.compile(
    r'service "(?P<service>[^"]+)" didn\'t complete successfully: exit (?P<code>-?\d+)'
)
# What the docker CLI says when no engine answers on its socket (or the answer broke off).
DAEMON_GONE = (
    "cannot connect to the docker daemon",
    "is the docker daemon running",
    "error during connect",
)
# A probe of an engine that went away: long enough for a loaded one, short beside an undo's wait.
PROBE_TIMEOUT = 10.0
# Worst first: the state that decides a service made of several containers.
_SEVERITY = ("dead", "exited", "restarting", "paused", "created", "removing", RUNNING)


class ComposeRuntime:
    kind = "compose"

    def __init__(
        self,
        settings: EnvironmentSettings,
        host: Host,
        docker: str = "docker",
        *,
        control: Host | None = None,
    ) -> None:
        self.settings = settings
        self.conf: ComposeSettings = compose_settings(settings)
        self.host = host
        self.control = control if control is not None else host
        self.docker = docker
        self.state = state_dir(settings, host)
        self.source_env_file = on_host(settings, settings.env_file, host)
        self.project = compose_project(settings, host)
        self.env_file = compose_env_file(settings, host)  # what compose reads
        self.flags_dir = flags_dir(settings, host)  # the services mount it read-only
        self.labels_file = f"{self.state}/{LABELS_FILE}"  # named after its content by check()
        self._config: dict[str, Any] | None = None  # `config --format json`, once checked

    # -- preflight -------------------------------------------------------------------------

    def check(self) -> None:
        """A reachable daemon, compose v2 reading valid compose files, and a project that no
        other environment's containers are in - or exactly why not.

        Writes the env file copy and the labels file first. Three commands when all is well
        (each ``docker`` call costs about 0.1 s); compose's version is asked only to explain a
        failing ``config``.
        """
        if self._config is not None:
            return
        where = f"on {self.host.name}"
        server = self._query(cmd.server_version(self.docker), check=False)
        if server.returncode == 127:
            raise DeployFailure(f"the docker CLI is not installed {where}", INSTALL_DOCKER)
        if not server.ok or not server.stdout.strip():
            text = _last_line(server.stderr or server.stdout)
            if "permission denied" in text.lower():
                raise DeployFailure(
                    f"no permission to use the Docker daemon {where}: {text}",
                    "run as a user in the docker group (or as root)",
                )
            raise self._unreachable(f"`docker version` failed with {text!r}")
        self._write_env_file()
        # Made before compose can: Docker would create a missing bind-mount source as root.
        self.host.makedirs(self.flags_dir, mode=0o755)
        try:  # its output holds the env file's values: never shown, not even on a timeout
            config = self._query(cmd.config_json(self.project), release=ANY_RELEASE, check=False)
        except CommandError:
            raise DeployFailure(
                f"`docker compose config` did not answer {where} within "
                f"{self.settings.timeouts.query:g}s",
                "check the Docker daemon and the compose plugin (`docker compose version`)",
            ) from None
        if not config.ok:
            version = self._query(cmd.version(self.docker), check=False)
            out = (version.stdout + version.stderr).strip()
            major = out.removeprefix("v").split(".")[0]
            if not version.ok or not major.isdigit() or int(major) < 2:
                raise DeployFailure(
                    f"`docker compose` (v2) is not available {where}: {_last_line(out)}",
                    INSTALL_COMPOSE,
                )
            raise OperatorError(
                f"compose files {', '.join(self.project.files)} are not valid "
                f"(docker compose says):\n{config.stderr.strip()}",
                "fix the compose file where named above (`docker compose config` shows the merge)",
            )
        found = json.loads(config.stdout or "{}")
        self._write_labels(list(found.get("services") or {}))
        self._refuse_other_environments()
        self._config = found

    def _write_env_file(self) -> None:
        """The copy of the env file compose reads: python-dotenv's values with the host's own
        ``env`` over them (as every host's processes get them; the primary reads the operator's
        file, not one written for it), quoted for compose (0600, rewritten whenever they
        change)."""
        try:
            source = self.host.read_file(self.source_env_file)
        except OSError as exc:
            raise OperatorError(
                f"cannot read the env file {self.source_env_file} on {self.host.name}: "
                f"{exc.strerror or exc}",
                "put the environment's env file there (mode 600): the containers get their "
                "settings from it",
            ) from None
        try:
            values = envfile.parse_values(source)
        except UnicodeDecodeError:
            raise OperatorError(
                f"the env file {self.source_env_file} on {self.host.name} is not UTF-8 text",
                "save it as UTF-8",
            ) from None
        own = next((h.env for h in self.settings.hosts if h.name == self.host.name), {})
        text = envcompose.render({**values, **own}, self.source_env_file)
        self._keep(self.env_file, text.encode("utf-8"), envfile.ENV_FILE_MODE)

    def _write_labels(self, services: list[str]) -> None:
        """A compose file (JSON is YAML) that labels every service's containers with the
        environment: ``up`` has no ``--label``, and the operator's files stay as they are.

        Named after its content: it names these files' services, and a service it names that a
        set of files lacks would make compose refuse that set (the undo starts the previous
        release with its own files, which may have fewer services).
        """
        labels = {name: {"labels": {ENV_LABEL: self.settings.name}} for name in services}
        data = (json.dumps({"services": labels}, indent=2) + "\n").encode("utf-8")
        stem = LABELS_FILE.removesuffix(".yml")
        self.labels_file = f"{self.state}/{stem}-{hashlib.sha256(data).hexdigest()[:12]}.yml"
        self._keep(self.labels_file, data, 0o644)

    def _keep(self, path: str, data: bytes, mode: int) -> None:
        """Write ``path`` (atomically) unless it holds ``data`` already: a run that changes
        nothing, a dry run included, leaves it as it was."""
        try:
            if self.host.read_file(path) == data:
                return
        except OSError:
            self.host.makedirs(self.state, mode=0o700)
        self.host.write_file(path, data, mode=mode)

    def _refuse_other_environments(self) -> None:
        """Never act on another environment's containers that share this project name (on
        another deploytools checkout, or under a name the config could not compare)."""
        found = self._query(cmd.containers(self.project.name, self.docker)).stdout
        theirs = {
            str(entry.get("Names", "")): env
            for entry in parse_ps(found)
            if (env := environment_of(entry)) not in (None, self.settings.name)
        }
        if theirs:
            raise OperatorError(
                f"compose project {self.project.name} on {self.host.name} holds containers of "
                f"environment {', '.join(sorted(set(theirs.values())))} "
                f"({', '.join(sorted(theirs))}): {self.settings.name} does not act on them",
                f"give environments.{self.settings.name}.compose.project_name in deploy.toml "
                "a name no other environment uses; the other environment's containers stay",
            )

    def services(self) -> list[str]:
        """The services compose would run (those of inactive profiles left out)."""
        return list(self._services_config())

    def healthchecked(self) -> set[str]:
        """Services whose compose configuration defines an enabled healthcheck."""
        return {
            name
            for name, service in self._services_config().items()
            if (service.get("healthcheck") or {}).get("test")
            and not (service.get("healthcheck") or {}).get("disable")
        }

    def one_shots(self) -> set[str]:
        """Services that run to completion: declared ``oneshot``, the target of a
        ``service_completed_successfully`` condition, or restarted "no" (compose's default)
        and given no health check to pass (a server without a restart policy has a probe).

        A one-shot that Docker restarts even when it exits 0 (``always``, ``unless-stopped``)
        would run again and again: an operator error, found before anything changes.
        """
        services = self._services_config()
        awaited = {
            name
            for service in services.values()
            for name, dep in (service.get("depends_on") or {}).items()
            if isinstance(dep, dict) and dep.get("condition") == "service_completed_successfully"
        }
        checked = self.healthchecked()
        found = set()
        for name, service in services.items():
            conf = self.settings.services.get(name, ServiceSettings())
            policy = _restart_policy(service)
            probed = bool(conf.probe.url) or (conf.compose_health and name in checked)
            if conf.oneshot is None:
                oneshot = name in awaited or (policy == "no" and not probed)
            else:
                oneshot = conf.oneshot
            if oneshot and policy.split(":")[0] in ("always", "unless-stopped"):
                why = "oneshot = true" if conf.oneshot else "awaited to complete"
                raise OperatorError(
                    f"service {name} is a one-shot ({why}) but its compose restart policy is "
                    f"{policy!r}: Docker would start it again each time it completes",
                    f'give {name} restart: "no" (or "on-failure") in the compose file, or set '
                    f"environments.{self.settings.name}.services.{name}.oneshot = false",
                )
            if oneshot:
                found.add(name)
        return found

    def _services_config(self) -> dict[str, Any]:
        self.check()
        return dict((self._config or {}).get("services") or {})

    def require_services(self, names: Sequence[str]) -> list[str]:
        known = self.services()
        unknown = [n for n in names if n not in known]
        if unknown:
            raise OperatorError(
                f"unknown service(s) {', '.join(unknown)} in compose project {self.project.name}",
                f"use one of: {', '.join(known)}",
            )
        return list(names) or known

    # -- images ----------------------------------------------------------------------------

    def images(self, release: str) -> list[str]:
        """The release's own images: those the compose files tag with ``release``.

        Read from the configuration ``check`` holds (one ``config`` call per run, not one per
        release): the services whose image tag is ``RELEASE_ID``, with this release put in.
        """
        check_release(release)
        suffix = f":{ANY_RELEASE}"
        named = (str(s.get("image") or "") for s in self._services_config().values())
        return list(
            dict.fromkeys(i[: -len(suffix)] + f":{release}" for i in named if i.endswith(suffix))
        )

    def image_ids(self, release: str) -> dict[str, str]:
        """Image name -> id for the release's images that are present on the host."""
        found = {}
        for image in self.images(release):
            done = self._query(cmd.image_ids([image], self.docker), check=False)
            if done.ok and done.stdout.strip():
                found[image] = done.stdout.strip().splitlines()[0]
        return found

    def has_release(self, release: str) -> bool:
        images = self.images(release)
        return bool(images) and len(self.image_ids(release)) == len(images)

    def image_check(self, release: str, recorded: Mapping[str, str]) -> ImageCheck:
        """A tag naming another id than the one recorded is never used: the recorded image is
        tagged again if it is still here (by id), else the release must be built again."""
        present = self.image_ids(release)
        retag, missing, moved = {}, [], []
        for image in self.images(release):
            want, now = recorded.get(image), present.get(image)
            if want is None or now == want:
                if now is None:
                    missing.append(image)
                continue
            if now is not None:
                moved.append(image)
            if self._query(cmd.image_ids([want], self.docker), check=False).ok:
                retag[image] = want
            else:
                missing.append(image)
        return ImageCheck(retag, missing, moved)

    def retag(self, images: Mapping[str, str]) -> None:
        for image, image_id in images.items():
            self._run(cmd.tag_image(image_id, image, self.docker))

    def remove_release(self, release: str) -> list[str]:
        """Untag the release's images; returns what was removed."""
        present = list(self.image_ids(release))
        if present:
            self._run(cmd.remove_images(present, self.docker))
        return present

    def stored_releases(self) -> list[str]:
        """None: a compose release is its images, which deploytools leaves to Docker."""
        return []

    def plan_build(self, release: str) -> list[str]:
        argv = cmd.build(self.project, build_args=self.conf.build_args)
        return [f"{self._shown_env(release)} {shlex.join(argv)}"]

    def plan_up(self, release: str, services: Sequence[str] = ()) -> list[str]:
        return [
            f"{self._shown_env(release)} {shlex.join(cmd.up(self._labelled(), services))}",
            f"first: free space on Docker's data root >= the images + {self.conf.min_free_mb} MB",
        ]

    def prepare_build(self, release: str) -> dict[str, str]:
        """Images are built on the host (or the primary), from nothing the controller makes."""
        return {}

    def build(self, release: str, source: Path | None = None) -> dict[str, str]:
        self.check()
        project = self.project
        if source is not None:
            directory = str(source / self.conf.directory)
            files = tuple(inside(directory, f) for f in self.conf.files)
            project = replace(project, directory=directory, files=files)
        argv = cmd.build(project, build_args=self.conf.build_args)
        self._run(argv, release=release, cwd=project.directory)
        ids = self.image_ids(release)
        if not ids:
            raise DeployFailure(
                f"the build produced no image tagged {release!r}",
                "name the image ${IMAGE_NAME}:${RELEASE_ID} in the compose file",
            )
        return ids

    # -- lifecycle ---------------------------------------------------------------------------

    def up(self, release: str, services: Sequence[str] = ()) -> None:
        self.require_services(services)
        present = self.image_ids(release)
        missing = [i for i in self.images(release) if i not in present]
        if missing:
            raise DeployFailure(
                f"images of release {release!r} are not on {self.host.name}: {', '.join(missing)}",
                f"build them: invoke stack.build --env {self.settings.name} --release {release}",
            )
        self._check_room(release, services)
        self._remove_dead(services)
        try:
            self._run(cmd.up(self._labelled(), services), release=release)
        except CommandError as exc:
            raise self._one_shot_failed(exc) or exc from None

    def _check_room(self, release: str, services: Sequence[str]) -> None:
        """Refuse, before compose stops anything, a start that Docker's data root has no room
        for: the images of the services to (re)create plus ``compose.min_free_mb``.

        Services already running this release are left as they are by ``up`` and need nothing
        (an undo returning to what still runs is never refused). The free space is read with
        ``df`` on this host; a data root this host cannot see (a remote ``DOCKER_HOST``, Docker
        Desktop's VM) is not checked.
        """
        now = self.status()
        creating = [
            name
            for name in services or self.services()
            if (now[name].state, now[name].release) != (RUNNING, release)
        ]
        if not creating:
            return
        root, free = self._data_root_free()
        if free is None:
            return
        images = self._images_of(creating, release)
        sizes = self._query(cmd.image_sizes(images, self.docker), check=False).stdout.split()
        size = sum(int(n) for n in sizes if n.isdigit())
        margin = self.conf.min_free_mb
        need = size + margin * MB
        if free < need:
            raise DeployFailure(
                f"not enough room to start release {release} on {self.host.name}: Docker's data "
                f"root {root} has {free / MB:.1f} MB free, {need / MB:.1f} MB needed (images "
                f"{size / MB:.1f} MB + compose.min_free_mb {margin} MB); nothing was stopped",
                f"free space in {root} (docker image prune, docker builder prune, old logs), "
                f"or lower environments.{self.settings.name}.compose.min_free_mb",
            )

    def _remove_dead(self, services: Sequence[str]) -> None:
        """Remove the dead containers of the services to start: compose starts such a
        container again when its config is the one wanted, and fails ("container is marked
        for removal and cannot be started").

        A removal that failed half-way (its file system busy) leaves a container "removing"
        for good, and one interrupted by the engine stopping (while compose replaced it) comes
        back "dead": until it is gone an ``up`` to its release fails, an undo's and a
        rollback's included. Such a container runs nothing and is never started again:
        removing it (its volumes kept) loses nothing, and a removal that still fails says why
        in Docker's words.
        """
        found = self._query(cmd.dead_containers(self.project.name, self.docker)).stdout
        wanted = set(services or self.services())
        dead = [
            i for i, _, name in (row.partition(" ") for row in found.splitlines()) if name in wanted
        ]
        if dead:
            self._run(cmd.remove_containers(dead, self.docker))

    def _images_of(self, services: Sequence[str], release: str) -> list[str]:
        """The images ``services`` run on ``release`` (a release's own tag put in)."""
        config = self._services_config()
        named = (str(config.get(name, {}).get("image") or "") for name in services)
        return list(dict.fromkeys(i.replace(ANY_RELEASE, release) for i in named if i))

    def _data_root_free(self) -> tuple[str, int | None]:
        """Docker's data root, and the bytes free there as ``df`` on this host sees them."""
        root = self._query(cmd.data_root(self.docker)).stdout.strip()
        return root, free_space(self.host, root, self.settings.timeouts.query)

    def stop(self, services: Sequence[str] = ()) -> None:
        self.require_services(services)
        self._run(cmd.stop(self.project, services, timeout=round(self.settings.timeouts.stop)))

    def down(self) -> None:
        self.check()
        self._run(cmd.down(self.project, timeout=round(self.settings.timeouts.stop)))

    # -- looking at it -------------------------------------------------------------------------

    def status(self) -> dict[str, ServiceStatus]:
        """``ps --all``, then one ``docker inspect`` of every container for its restart count
        (``ps`` does not carry it): two commands whatever the number of containers."""
        self.check()
        out = self._query(cmd.ps(self.project)).stdout
        found: dict[str, list[dict[str, Any]]] = {}
        for entry in parse_ps(out):
            found.setdefault(str(entry.get("Service", "")), []).append(entry)
        restarts = self._restart_counts([e for entries in found.values() for e in entries])
        result = {name: ServiceStatus(name, MISSING) for name in self.services()}
        checked = self.healthchecked()
        for name, entries in found.items():
            status = _service_status(name, entries, restarts)
            if name in checked and status.state == RUNNING and not status.health:
                # Docker shows no health for a moment while a container (re)starts: a service
                # with a healthcheck is not healthy until the check says so.
                status = replace(status, health="starting")
            result[name] = status
        return result

    def logs(self, service: str, lines: int = 50) -> str:
        self.require_services([service])
        done = self._query(cmd.logs(self.project, service, tail=lines))
        return done.stdout + done.stderr

    def exec(self, service: str, command: Sequence[str]) -> Result:
        self.require_services([service])
        return self._run(cmd.exec_(self.project, service, command), check=False)

    def current_release(self) -> str | None:
        running = [s.release for s in self.status().values() if s.state == RUNNING and s.release]
        return max(set(running), key=running.count) if running else None

    def check_migrations(self) -> str:
        """``database.migrate_service``, a service of the compose files."""
        service = self.settings.database.migrate_service
        known = self.services()
        if service not in known:
            raise OperatorError(
                f"database.migrate_service {service!r} is not a service of compose project "
                f"{self.project.name} (services: {', '.join(known)})",
                f"set environments.{self.settings.name}.database.migrate_service to the "
                "service whose image carries alembic and the migrations",
            )
        return service

    def run_alembic(
        self, release: str | None, args: Sequence[str], env: Mapping[str, str]
    ) -> Result:
        """``alembic ARGS`` in a one-off container of ``database.migrate_service``'s image of
        ``release`` (None: the release running now), on this (the primary) host; the
        service's env file is the container's, ``env`` travels as ``-e NAME``."""
        service = self.check_migrations()
        release = release or self.current_release()
        if not release:
            raise OperatorError(
                f"no release of {self.settings.name} runs on {self.host.name}: no image to "
                "run alembic from",
                f"deploy first (invoke deploy --env {self.settings.name})",
            )
        argv = cmd.run_once(self._labelled(), service, alembic.program(args), list(env))
        timeout = self.settings.timeouts.command
        return self._call(argv, release, False, None, timeout, secret_env=env)

    def _restart_counts(self, entries: list[dict[str, Any]]) -> dict[str, int]:
        """Container id -> its restart count; a container gone meanwhile is simply left out."""
        ids = [str(e["ID"]) for e in entries if e.get("ID")]
        if not ids:
            return {}
        done = self._query(cmd.restart_counts(ids, self.docker), check=False)
        counts = {}
        for line in done.stdout.splitlines():
            full, _, count = line.strip().partition(" ")
            short = next((i for i in ids if full.startswith(i)), None)
            if short is not None and count.isdigit():
                counts[short] = int(count)
        return counts

    def _one_shot_failed(self, exc: CommandError) -> DeployFailure | None:
        """``up`` waits for the target of a ``service_completed_successfully`` condition and
        fails when it exits non-zero: say which one-shot, its exit code and its log."""
        found = _NOT_COMPLETED.search(exc.output)
        if found is None or found["service"] not in self.services():
            return None
        name, code = found["service"], found["code"]
        lines = [
            f"one-shot {name} failed (exit code {code}): the services that wait for it to "
            "complete (service_completed_successfully) were not started",
            *log_tail(self, name),
        ]
        return DeployFailure("\n".join(lines), see_logs(self.settings.name, name))

    def unreachable(self, timeout: float) -> str | None:
        """``the Docker engine on HOST`` when ``docker version`` gets no server answer within
        ``timeout``; None when it answers."""
        if self._server_answer(timeout) is None:
            return None
        return f"the Docker engine on {self.host.name}"

    def out_of_space(self) -> str | None:
        def place() -> str:
            root, free = self._data_root_free()
            where = f"Docker's data root {root}: {free_said(free)}"
            if free is not None and free >= self.conf.min_free_mb * MB:
                where += "; the full one is a volume or tmpfs the service writes to"
            return where

        return disk_full(self, self.host.name, place)

    # -- plumbing -------------------------------------------------------------------------------

    def _labelled(self) -> cmd.Project:
        """The project with the labels file last, for the command that creates containers."""
        return replace(self.project, files=(*self.project.files, self.labels_file))

    def _env(self, release: str | None) -> dict[str, str]:
        env = {"IMAGE_NAME": self.conf.image_name, "ENV_FILE": self.env_file}
        env["FLAGS_DIR"] = self.flags_dir
        if release:
            env["RELEASE_ID"] = release
        return env

    def _shown_env(self, release: str) -> str:
        return " ".join(f"{k}={shlex.quote(v)}" for k, v in self._env(release).items())

    def _run(
        self,
        argv: list[str],
        *,
        release: str | None = None,
        check: bool = True,
        cwd: str | None = None,
    ) -> Result:
        """A command that changes things: bounded by ``timeouts.command``."""
        return self._call(argv, release, check, cwd, self.settings.timeouts.command)

    def _query(self, argv: list[str], *, release: str | None = None, check: bool = True) -> Result:
        """A command that only looks: bounded by the shorter ``timeouts.query``."""
        return self._call(argv, release, check, None, self.settings.timeouts.query)

    def _call(
        self,
        argv: list[str],
        release: str | None,
        check: bool,
        cwd: str | None,
        timeout: float,
        secret_env: Mapping[str, str] | None = None,
    ) -> Result:
        try:
            done = self.host.run(
                argv,
                env=self._env(release),
                secret_env=secret_env,
                cwd=cwd or self.project.directory,
                timeout=timeout,
                check=check,
            )
        except CommandError as exc:
            if exc.returncode == 127:
                raise DeployFailure(
                    f"the docker CLI is not installed on {exc.host}", INSTALL_DOCKER
                ) from None
            raise self._explained(exc) from None
        said = done.stderr + done.stdout
        if not done.ok and any(words in said.lower() for words in DAEMON_GONE):
            # An unchecked command's failure means "absent" to its caller (an image): not
            # when the engine itself is gone.
            raise self._unreachable(f"`{_shown(argv)}` failed with {_last_line(said)!r}")
        return done

    def _explained(self, exc: CommandError) -> DeployFailure:
        """Docker's failures that have a known fix get it; the rest keep compose's own words.

        An engine that stops during a command (dockerd restarted) makes compose fail with
        whatever broke first (``failed to update store for object type *libnetwork.endpoint``):
        a ``docker version`` then tells an engine that went away from a command that failed.
        """
        text = exc.output.lower()
        if "is not a docker command" in text or ("unknown command" in text and "compose" in text):
            return DeployFailure(
                f"`docker compose` (v2) is not available on {exc.host}", INSTALL_COMPOSE
            )
        said = _last_line(exc.output) if exc.returncode is not None else "no answer in time"
        what = f"`{_shown(exc.argv)}` failed with {said!r}"
        if any(words in text for words in DAEMON_GONE):
            return self._unreachable(what)
        probe = self._server_answer(PROBE_TIMEOUT)
        if probe is not None:
            return self._unreachable(f"{what} and `docker version` with {probe!r}")
        return exc

    def _unreachable(self, what: str) -> DeployFailure:
        return DeployFailure(
            f"the Docker engine on {self.host.name} is unreachable: {what}", START_DOCKER
        )

    def _server_answer(self, timeout: float) -> str | None:
        """None when the engine answers ``docker version``; else what the CLI said."""
        try:
            done = self.host.run(
                cmd.server_version(self.docker), env=self._env(None), timeout=timeout, check=False
            )
        except CommandError as exc:
            return "no answer in time" if exc.returncode is None else _last_line(exc.output)
        if done.ok and done.stdout.strip():
            return None
        return _last_line(done.stderr or done.stdout)


def parse_ps(text: str) -> list[dict[str, Any]]:
    """``docker compose ps --format json``: a JSON array (older v2) or one object per line."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        data = json.loads(text)
        return [e for e in data if isinstance(e, dict)]
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def environment_of(entry: dict[str, Any]) -> str | None:
    """The environment a container (of ``docker ps``) belongs to: its label, else the one its
    image's release tag names (a container started before labels, or by hand); or None."""
    for label in str(entry.get("Labels") or "").split(","):
        name, _, value = label.partition("=")
        if name == ENV_LABEL:
            return value
    match = RELEASE_TAG.match(str(entry.get("Image") or "").rpartition(":")[2])
    return match.group("env") if match else None


def _service_status(
    name: str, entries: list[dict[str, Any]], restarts: dict[str, int]
) -> ServiceStatus:
    """Several containers (replicas) of one service: the worst of them speaks for it; their
    restarts add up, and their ids together say which containers these are."""

    def rank(entry: dict[str, Any]) -> tuple[int, int]:
        state = str(entry.get("State", "")).lower()
        health = str(entry.get("Health", "")).lower()
        severity = _SEVERITY.index(state) if state in _SEVERITY else 0
        return severity, {"unhealthy": 0, "starting": 1}.get(health, 2)

    worst = min(entries, key=rank)
    image = str(worst.get("Image", ""))
    exit_code = worst.get("ExitCode")
    return ServiceStatus(
        service=name,
        state=str(worst.get("State", "")).lower() or MISSING,
        health=str(worst.get("Health", "")).lower(),
        exit_code=int(exit_code) if isinstance(exit_code, int) else None,
        release=image.rpartition(":")[2] if ":" in image else "",
        detail=str(worst.get("Name", "")),
        instance=",".join(sorted(str(e.get("ID", "")) for e in entries)),
        restarts=sum(restarts.get(str(e.get("ID", "")), 0) for e in entries),
    )


def _restart_policy(service: dict[str, Any]) -> str:
    """``restart``, else ``deploy.restart_policy`` (which compose honours too), else "no"."""
    if service.get("restart"):
        return str(service["restart"])
    condition = ((service.get("deploy") or {}).get("restart_policy") or {}).get("condition")
    return {"any": "always", "on-failure": "on-failure"}.get(str(condition), "no")


def _shown(argv: Sequence[str]) -> str:
    """A command as an operator knows it: ``docker compose up``, ``docker image inspect``."""
    if argv[1:2] != ["compose"]:
        return " ".join(["docker", *takewhile(lambda a: not a.startswith("-"), argv[1:3])])
    rest = list(argv[2:])
    while rest and rest[0].startswith("-"):  # the project's -p/-f/--env-file/... and values
        rest = rest[2:]
    return " ".join(["docker", "compose", *rest[:1]])


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
