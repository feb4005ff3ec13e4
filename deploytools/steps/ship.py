"""A compose release built once, on the primary, reaches the other hosts: its images streamed
engine to engine (``runtime.ship.ship_images``: no registry, an image a host has by id is not
sent again), and the files ``docker compose`` reads there, so that a host that never built
anything, and has no checkout, runs the release. With ``compose.registry`` the images go
through the registry instead (``runtime.registry``): pushed once from the primary, pulled by
the hosts that lack them, by digest; a rollback pulls the digests recorded with its release.

The compose files go where the host's runtime looks for them (its root's compose
``directory``), as the primary built with them, through ``ReleaseConfig.place``, which writes
a release's compose files for rollbacks too. The env file is the controller's, with the host's
own ``env`` over it, written over SFTP at mode 0600 where the runtime reads it (it makes its
compose copy from it): never on a command line.
"""

from __future__ import annotations

import posixpath
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from deploytools.errors import DeployFailure, OperatorError
from deploytools.steps.base import RunContext
from deploytools.targets import on_host, state_dir

if TYPE_CHECKING:
    from deploytools.config import EnvironmentSettings
    from deploytools.hosts.base import Host


class ShipImages:
    """The release's images, from the primary's engine to this host's, those it lacks."""

    name = "ship images"

    def plan(self, ctx: RunContext) -> list[str]:
        return [
            f"docker image save <images of {ctx.release or '<release>'}> on "
            f"{ctx.site.primary.name} | docker image load on {ctx.host.name}: only those "
            "it lacks (by image id), checked by id after loading"
        ]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from deploytools.runtime.ship import ship_images

        images = _images(ctx)
        timeout = ctx.settings.timeouts.command
        shipped = ship_images(ctx.site.primary, ctx.host, images, timeout=timeout)
        return {"sent": shipped.sent, "present": shipped.present, "bytes": shipped.bytes}


class PushImages:
    """The release's images, from the primary (which built them) to ``compose.registry``."""

    name = "push images"

    def plan(self, ctx: RunContext) -> list[str]:
        registry = _registry(ctx)
        return [
            f"on {ctx.host.name}: docker image push {registry}/<image>:{ctx.release or '<release>'}"
            " for each image of the release; its digest recorded with the release"
        ]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from deploytools.runtime.registry import push_images

        images = _images(ctx)
        timeout = ctx.settings.timeouts.command
        with _logged_in(ctx) as env:
            pushed = push_images(ctx.host, images, _registry(ctx), timeout=timeout, env=env)
        ctx.facts.pushed = pushed
        return {"pushed": pushed}


class PullImages:
    """The release's images on this host: those it lacks by id pulled from the registry by
    the digest pushed (or recorded with the release), checked by id."""

    name = "pull images"

    def plan(self, ctx: RunContext) -> list[str]:
        return [
            f"on {ctx.host.name}: docker image pull {_registry(ctx)}/<image>@<pushed digest>, only"
            " for images whose id it lacks, checked by id after pulling"
        ]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from deploytools.runtime.registry import pull_images

        images = {name: ctx.facts.images[name] for name in _images(ctx)}
        timeout = ctx.settings.timeouts.command
        pushed = ctx.facts.pushed
        with _logged_in(ctx) as env:
            got = pull_images(ctx.host, images, pushed, timeout=timeout, env=env)
        return {"pulled": got.sent, "present": got.present}


class PlaceComposeFiles:
    """The compose files the primary built the release with, and the env file, on this host."""

    name = "place compose files"

    def plan(self, ctx: RunContext) -> list[str]:
        files = ", ".join(self._files(ctx))
        return [
            f"write {files} (from the project's root) on {ctx.host.name} as on "
            f"{ctx.site.primary.name}",
            f"write the env file {self._env_file(ctx)} on {ctx.host.name} (mode 0600, over "
            "SFTP) from this machine's, with the host's own env",
        ]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from deploytools.releaseconfig import ComposeFile, ReleaseConfig

        primary = ctx.site.primary
        files = []
        for path in self._files(ctx):
            source = f"{_root(ctx, primary.name)}/{path}"
            try:
                data = primary.read_file(source)
            except OSError as exc:
                raise DeployFailure(
                    f"cannot read compose file {source} on {primary.name}: {exc}",
                    "the primary builds the release from its compose directory: check it there",
                ) from None
            files.append(ComposeFile(path, path, data))
        config = ReleaseConfig(ctx.release, None, ctx.settings, tuple(files))
        config.place(ctx.host, _root(ctx, ctx.host.name))
        if ctx.settings.compose is not None:  # compose runs in it (a rollback's files are apart)
            ctx.host.makedirs(on_host(ctx.settings, ctx.settings.compose.directory, ctx.host))
        env_file = place_env_file(ctx.settings, ctx.host)
        return {"compose_files": self._files(ctx), "env_file": env_file}

    @staticmethod
    def _files(ctx: RunContext) -> list[str]:
        """The compose files from the project's root (one outside it is the host's own)."""
        from deploytools.releaseconfig import in_repo

        conf = ctx.settings.compose
        if conf is None:
            return []
        return [p for name in conf.files if (p := in_repo(conf.directory, name)) is not None]

    @staticmethod
    def _env_file(ctx: RunContext) -> str:
        return on_host(ctx.settings, ctx.settings.env_file, ctx.host)


def place_env_file(settings: EnvironmentSettings, host: Host) -> str:
    """This machine's env file on ``host``, with the host's own ``env`` (0600, over SFTP):
    what compose there reads. Its path there."""
    from deploytools.env import file as envfile

    doc = envfile.read(settings.path(settings.env_file))
    own = next((h.env for h in settings.hosts if h.name == host.name), {})
    for key, value in own.items():
        doc = doc.set(key, value)
    env_file = on_host(settings, settings.env_file, host)
    host.makedirs(posixpath.dirname(env_file))
    envfile.write(host, env_file, doc)
    return env_file


def _images(ctx: RunContext) -> list[str]:
    """The release's images the build (or a rollback's prepare) named."""
    images = list(ctx.facts.images)
    if not images:
        raise DeployFailure(
            f"no image of release {ctx.release} is known to ship to {ctx.host.name}",
            "the build (or a rollback's prepare) on the primary names them: see the journal",
        )
    return images


def _registry(ctx: RunContext) -> str:
    conf = ctx.settings.compose
    return conf.registry.url if conf is not None and conf.registry else "<compose.registry>"


def _logged_in(ctx: RunContext) -> AbstractContextManager[dict[str, str]]:
    """The registry's credentials, if it has any, in a DOCKER_CONFIG of the run's own on this
    host (``runtime.registry.logged_in``), from the env file's keys the config names."""
    from deploytools.runtime.registry import Login, logged_in

    conf = ctx.settings.compose.registry if ctx.settings.compose is not None else None
    login = None
    if conf is not None and conf.user_key is not None and conf.password_key is not None:
        values = ctx.env_values
        absent = [k for k in (conf.user_key, conf.password_key) if not values.get(k)]
        if absent:
            raise OperatorError(
                f"the env file {ctx.settings.env_file} has no value for {', '.join(absent)},"
                f" which compose.registry names for logging in to {conf.server}",
                f"add {', '.join(f'{k}=...' for k in absent)} to it",
            )
        login = Login(conf.server, values[conf.user_key], values[conf.password_key])
    scratch = state_dir(ctx.settings, ctx.host)
    return logged_in(ctx.host, login, scratch, timeout=ctx.settings.timeouts.command)


def _root(ctx: RunContext, host: str) -> str:
    """Host ``host``'s root, where relative config paths (the compose directory) start."""
    return posixpath.normpath(on_host(ctx.settings, ".", ctx.site.host(host)))
