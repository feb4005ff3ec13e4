"""Compose releases through a registry (``compose.registry``): pushed once from the host that
built them, pulled by the hosts that lack them, by digest and checked by image id.

Each image ``name:tag`` is pushed as ``<registry>/<name>:<tag>`` (its repository's path, a
registry host of its own left out): the compose files keep their own ``image:`` names, so
``up``, rollbacks and retention work on the same names with or without a registry. A host
pulls ``<registry>/<name>@sha256:...``, the digest the push reported, never a tag that may have
moved since, then compares the pulled image's id with the one built: a registry that serves
something else fails the deploy. The registry's names are untagged afterwards on both sides,
so that only the release's own name holds the image (retention removes it as before). A host
that has the image id already (under any name) pulls nothing: it is only tagged.

Credentials (``Login``) are used through a ``DOCKER_CONFIG`` directory of the run's own on the
host (mode 0700): ``docker login --password-stdin`` writes there, the push or pull reads it, and
the directory is removed afterwards, so nothing of them stays on the host; the password goes on
standard input, never on a command line.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from deploytools.commands import compose as docker_cmd
from deploytools.errors import CommandError, DeployFailure, DeployToolsError
from deploytools.hosts.base import Host
from deploytools.runtime.ship import Shipped, image_ids


@dataclass(frozen=True)
class Login:
    """Who logs in to ``server`` (``host[:port]``)."""

    server: str
    user: str
    password: str = field(repr=False)


@contextmanager
def logged_in(
    host: Host, login: Login | None, scratch: str, *, timeout: float, docker: str = "docker"
) -> Iterator[dict[str, str]]:
    """The environment docker needs on ``host`` to use the registry: none without ``login``,
    else a ``DOCKER_CONFIG`` of this run's own under ``scratch``, logged in, removed after."""
    if login is None:
        yield {}
        return
    directory = f"{scratch}/.docker-config.{secrets.token_hex(4)}"
    env = {"DOCKER_CONFIG": directory}
    host.makedirs(directory, mode=0o700)
    try:
        try:
            argv = docker_cmd.login(login.server, login.user, docker)
            host.run(argv, env=env, stdin=login.password + "\n", timeout=timeout)
        except CommandError as exc:
            raise DeployFailure(
                f"cannot log in to registry {login.server} as {login.user} on {host.name}:"
                f" {_why(exc)}",
                "check the user and password the env file holds (compose.registry.user_key and"
                " password_key name them), and that the registry answers from there",
            ) from None
        yield env
    finally:
        with suppress(DeployToolsError, OSError):
            host.remove(directory)


def reference(registry: str, image: str) -> str:
    """``image`` (``name:tag``) under ``registry``."""
    name, _, tag = image.rpartition(":")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        name = rest  # the image's own registry host: the configured one takes its place
    return f"{registry}/{name}:{tag}"


def push_images(
    host: Host,
    images: Sequence[str],
    registry: str,
    *,
    timeout: float,
    docker: str = "docker",
    env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Push ``images`` from ``host``'s engine to ``registry``; image -> the digest reference
    pushed (``<registry>/<name>@sha256:...``), what the hosts pull and the journal records."""
    pushed = {}
    for image in images:
        ref = reference(registry, image)
        try:
            host.run(docker_cmd.tag_image(image, ref, docker), timeout=timeout)
            host.run(docker_cmd.push_image(ref, docker), env=env, timeout=timeout)
            said = host.run(docker_cmd.repo_digests(ref, docker), timeout=timeout).stdout
        except CommandError as exc:
            raise DeployFailure(
                f"cannot push {image} to registry {registry} from {host.name}: {_why(exc)}",
                f"check that the registry answers from {host.name} (compose.registry in"
                " deploy.toml names it) and that it takes pushes; nothing was started",
            ) from None
        repository = ref.rpartition(":")[0]
        digests = [d for d in said.split() if d.startswith(f"{repository}@")]
        if not digests:
            raise DeployFailure(
                f"the push of {image} to {registry} from {host.name} reported no digest",
                f"look at `docker image inspect {ref}` on {host.name} and deploy again",
            )
        host.run(docker_cmd.remove_images([ref], docker), timeout=timeout, check=False)
        pushed[image] = digests[0]
    return pushed


def pull_images(
    host: Host,
    images: Mapping[str, str],
    pushed: Mapping[str, str],
    *,
    timeout: float,
    docker: str = "docker",
    env: Mapping[str, str] | None = None,
) -> Shipped:
    """Give ``host`` the ``images`` (name -> id) it lacks: tagged when it has the id under
    another name, else pulled from the registry by the digest in ``pushed`` (name -> digest
    reference) and checked by id. ``sent``: what was pulled."""
    had = image_ids(host, list(images), timeout, docker)
    missing = [image for image, want in images.items() if had.get(image) != want]
    pulled = []
    for image in missing:
        want = images[image]
        if image_ids(host, [want], timeout, docker):
            host.run(docker_cmd.tag_image(want, image, docker), timeout=timeout)
            continue
        ref = _pull(host, image, want, pushed.get(image), timeout, docker, env)
        host.run(docker_cmd.tag_image(want, image, docker), timeout=timeout)
        # The release's own name holds it now: the registry's goes.
        host.run(docker_cmd.remove_images([ref], docker), timeout=timeout, check=False)
        pulled.append(image)
    present = [image for image in images if image not in pulled]
    return Shipped(host.name, pulled, present, ids=dict(images))


def _pull(
    host: Host,
    image: str,
    want: str,
    ref: str | None,
    timeout: float,
    docker: str,
    env: Mapping[str, str] | None,
) -> str:
    """Pull ``image`` by its digest reference ``ref``, checked to be ``want``; ``ref``."""
    if ref is None:
        raise DeployFailure(
            f"{host.name} lacks {image} and the release names no registry reference for it"
            " (it was made before compose.registry was set)",
            "take compose.registry out of deploy.toml for this rollback: the images are then"
            " streamed from the primary (rebuilt there from the release's commit if gone)",
        )
    try:
        host.run(docker_cmd.pull_image(ref, docker), env=env, timeout=timeout)
    except CommandError as exc:
        raise DeployFailure(
            f"{host.name} cannot pull {ref}: {_why(exc)}",
            f"check that the registry answers from {host.name} and still holds that digest",
        ) from None
    got = image_ids(host, [ref], timeout, docker).get(ref)
    if got != want:
        host.run(docker_cmd.remove_images([ref], docker), timeout=timeout, check=False)
        raise DeployFailure(
            f"the registry served {host.name} another image for {image} ({ref}): id"
            f" {got or '?'}, built as {want}",
            "the registry does not hold what was pushed: check what else pushes there, and"
            " deploy again",
        )
    return ref


def _why(exc: CommandError) -> str:
    """What docker said last (it names the registry's answer), or that it timed out."""
    lines = [line for line in exc.output.strip().splitlines() if line.strip()]
    if exc.returncode is None:
        return "timed out (timeouts.command)"
    return lines[-1][-300:] if lines else f"exited {exc.returncode}"
