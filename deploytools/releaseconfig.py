"""A recorded release's own deployment config: the settings and compose files it was made with.

An undo or a rollback starts release X as it was, so what ``up``, the health wait and the
Celery check need for X comes from X's commit (``git show SHA:path``, the working tree left
alone), not from today's tree: its ``config/deploy.toml`` environment gives the ``services``
(commands, probes) and ``celery`` tables and the ``compose`` table's ``files``,
``image_name``, ``build_args`` and ``untracked_inputs``; its compose files are written under
``<state dir>/<env>/releases/<tag>/`` on the host, where ``-f`` finds them. Everything else is
the environment's today: the env file and its values, the state and backup directories, the
hosts, the database settings, the timeouts, the runtime, the compose project name and its
``--project-directory`` (what relative paths in the compose files mean), and the invoke
config and command line, merged over X's file as over today's.

``release_config`` is the one answer to "the settings and compose files of release X"; a
release record that one day carries its resolved config would be read there.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from deploytools.commands import git
from deploytools.config import (
    DeployFile,
    EnvironmentSettings,
    environment,
    parse_deploy_file,
)
from deploytools.errors import CommandError, OperatorError
from deploytools.hosts.base import Host
from deploytools.release import record_of
from deploytools.targets import state_dir

SHA = re.compile(r"^[0-9a-f]{7,64}$")
# The compose keys a release brings; project_name and directory stay the environment's.
COMPOSE_KEYS = ("files", "image_name", "build_args", "untracked_inputs")
# What is read of a release's own file: what it brings, the runtime it ran on, and the keys
# every environment must have. The rest is today's, and is not checked in the old file: a key
# since retired (parallelism) or hosts from before one had to be the primary must not stop a
# rollback to it.
READ_KEYS = frozenset({"runtime", "env_file", "env_example", "services", "celery", "compose"})


@dataclass(frozen=True)
class ComposeFile:
    name: str  # as the release's compose.files lists it
    path: str  # from the project root
    data: bytes


@dataclass(frozen=True)
class ReleaseConfig:
    """Release ``tag``'s settings, and those of its compose files that are in its commit."""

    tag: str
    sha: str | None  # None: no recorded commit, today's config stands in
    settings: EnvironmentSettings
    files: tuple[ComposeFile, ...] = ()

    def describe(self) -> str:
        if self.sha is None:
            return f"{self.tag} has no recorded commit: using today's config"
        what = "compose files and config" if self.files else "config"
        return f"using the {what} of {self.tag} (commit {self.sha[:12]})"

    def place(self, host: Host, directory: str) -> EnvironmentSettings:
        """Write the compose files under ``directory`` on ``host``; the settings whose
        ``compose.files`` name them there (``--project-directory`` unchanged)."""
        conf = self.settings.compose
        if conf is None or not self.files:
            return self.settings
        placed = {}
        for file in self.files:
            placed[file.name] = target = f"{directory}/{file.path}"
            host.makedirs(posixpath.dirname(target))
            host.write_file(target, file.data, mode=0o644)
        # A file outside the project (an absolute path) is the environment's, as today.
        compose = conf.model_copy(update={"files": [placed.get(n, n) for n in conf.files]})
        return self.settings.model_copy(update={"compose": compose})


def release_config(
    control: Host, settings: EnvironmentSettings, tag: str, releases: list[dict[str, Any]]
) -> ReleaseConfig:
    """The settings and compose files of release ``tag``, from the commit its journal record
    names (read with git on the ``control`` machine); today's when there is no such record
    (``dev``, a release from before records named their commit)."""
    record = record_of(releases, tag)
    if record is None:
        return ReleaseConfig(tag, None, settings)
    sha = str(record["sha"])
    if not SHA.match(sha):
        raise OperatorError(
            f"the journal's record of release {tag} names no commit ({sha[:40]!r})",
            "check the release records (invoke releases --json)",
        )
    local, repo = control, str(settings.root)
    if local.run(git.has_commit(sha), cwd=repo, check=False).returncode != 0:
        raise OperatorError(
            f"release {tag} was made from commit {sha[:12]}, which is not in the repository "
            f"at {repo} (a shallow clone, or a pruned commit): its config cannot be read",
            f"fetch it (git fetch --unshallow, or git fetch origin {sha}), then run again",
        )

    def show(path: str) -> str:
        try:
            return local.run(git.show_file(sha, path), cwd=repo).stdout
        except CommandError:
            raise OperatorError(
                f"release {tag} (commit {sha[:12]}) has no {path}",
                f"that commit cannot be deployed as it is: check `git show {sha[:12]}:{path}`",
            ) from None

    layers = settings.layers
    label = f"{layers.config_file} of release {tag} (commit {sha[:12]})"
    ours = environment(
        brought(parse_deploy_file(show(layers.config_file), label), settings.name),
        settings.name,
        label,
        settings.root,
        layers,
    )
    if ours.runtime != settings.runtime:
        raise OperatorError(
            f"release {tag} ran on the {ours.runtime} runtime; environment {settings.name} now "
            f"uses {settings.runtime}",
            "go back to a release made for the same runtime, or deploy a new one",
        )
    update: dict[str, Any] = {"services": ours.services, "celery": ours.celery}
    files = []
    if settings.compose is not None and ours.compose is not None:
        kept = {key: getattr(ours.compose, key) for key in COMPOSE_KEYS}
        update["compose"] = settings.compose.model_copy(update=kept)
        for name in ours.compose.files:
            if (path := in_repo(ours.compose.directory, name)) is not None:
                files.append(ComposeFile(name, path, show(path).encode()))
    return ReleaseConfig(tag, sha, settings.model_copy(update=update), tuple(files))


def brought(deploy_file: DeployFile, env: str) -> DeployFile:
    """``deploy_file`` with only the ``READ_KEYS`` of its defaults and of ``env``."""

    def read(table: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in table.items() if key in READ_KEYS}

    envs = {**deploy_file.environments}
    if env in envs:
        envs[env] = read(envs[env])
    return deploy_file.model_copy(
        update={"defaults": read(deploy_file.defaults), "environments": envs}
    )


def placed_settings(
    control: Host,
    settings: EnvironmentSettings,
    tag: str,
    releases: list[dict[str, Any]],
    host: Host,
    *,
    directory: str | None = None,
) -> tuple[ReleaseConfig, EnvironmentSettings]:
    """``release_config`` with its compose files written on ``host`` (under
    ``<state dir>/<env>/releases/<tag>/`` unless ``directory`` says where)."""
    config = release_config(control, settings, tag, releases)
    if not config.files:
        return config, config.settings
    where = directory or f"{state_dir(settings, host)}/releases/{tag}"
    return config, config.place(host, where)


def in_repo(directory: str, name: str) -> str | None:
    """A compose file's path from the project root; None for one outside the project."""
    if name.startswith("/") or (len(name) > 2 and name[1] == ":"):
        return None
    path = posixpath.normpath(posixpath.join(directory, name))
    return None if path == ".." or path.startswith("../") else path
