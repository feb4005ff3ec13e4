"""A compose release built once, on the primary, reaches the other hosts: its images streamed
engine to engine (``runtime.ship.ship_images``: no registry, an image a host has by id is not
sent again), and the files ``docker compose`` reads there, so that a host that never built
anything, and has no checkout, runs the release.

The compose files go where the host's runtime looks for them (its root's compose
``directory``), as the primary built with them, through ``ReleaseConfig.place``, which writes
a release's compose files for rollbacks too. The env file is the controller's, with the host's
own ``env`` over it, written over SFTP at mode 0600 where the runtime reads it (it makes its
compose copy from it): never on a command line.
"""

from __future__ import annotations

import posixpath
from typing import Any

from deploytools.errors import DeployFailure
from deploytools.steps.base import RunContext
from deploytools.targets import on_host


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

        images = list(ctx.facts.images)
        if not images:
            raise DeployFailure(
                f"no image of release {ctx.release} is known to ship to {ctx.host.name}",
                "the build (or a rollback's prepare) on the primary names them: see the journal",
            )
        timeout = ctx.settings.timeouts.command
        shipped = ship_images(ctx.site.primary, ctx.host, images, timeout=timeout)
        return {"sent": shipped.sent, "present": shipped.present, "bytes": shipped.bytes}


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
        from deploytools.env import file as envfile
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
        doc = envfile.read(ctx.settings.path(ctx.settings.env_file))
        own = next((h.env for h in ctx.settings.hosts if h.name == ctx.host.name), {})
        for key, value in own.items():
            doc = doc.set(key, value)
        env_file = self._env_file(ctx)
        ctx.host.makedirs(posixpath.dirname(env_file))
        envfile.write(ctx.host, env_file, doc)
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


def _root(ctx: RunContext, host: str) -> str:
    """Host ``host``'s root, where relative config paths (the compose directory) start."""
    return posixpath.normpath(on_host(ctx.settings, ".", ctx.site.host(host)))
