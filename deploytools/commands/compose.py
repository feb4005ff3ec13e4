"""``docker compose`` (v2 plugin) and ``docker`` argv builders: what to run, never how.

Every compose command names its project, files and env file explicitly, so that the same
argv means the same stack whatever the working directory and whichever host runs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Argv = list[str]


@dataclass(frozen=True)
class Project:
    """The compose project a command acts on: ``-p``, ``-f`` (in order) and ``--env-file``."""

    name: str
    files: tuple[str, ...]
    env_file: str | None = None
    directory: str | None = None

    def base(self, docker: str = "docker") -> Argv:
        argv = [docker, "compose", "-p", self.name]
        for file in self.files:
            argv += ["-f", file]
        if self.env_file:
            argv += ["--env-file", self.env_file]
        if self.directory:
            argv += ["--project-directory", self.directory]
        return argv


def version(docker: str = "docker") -> Argv:
    """Prints e.g. ``2.40.3``; fails when the v2 plugin is missing."""
    return [docker, "compose", "version", "--short"]


def server_version(docker: str = "docker") -> Argv:
    """Fails (and says so) when the Docker daemon cannot be reached."""
    return [docker, "version", "--format", "{{.Server.Version}}"]


def config_json(project: Project) -> Argv:
    """The merged configuration as JSON; fails with compose's own message for a broken file.

    It holds the env file's values in clear: parse it, never print it."""
    return [*project.base(), "config", "--format", "json"]


def config_quiet(project: Project) -> Argv:
    """Validates the files (unknown keys, ``${VAR:?}`` unset) and prints nothing; needs only
    the client, no engine."""
    return [*project.base(), "config", "--quiet"]


def build(
    project: Project,
    services: Sequence[str] = (),
    *,
    build_args: Mapping[str, str] | None = None,
    pull: bool = False,
) -> Argv:
    argv = [*project.base(), "build"]
    for key, value in (build_args or {}).items():
        argv += ["--build-arg", f"{key}={value}"]
    if pull:
        argv.append("--pull")
    return [*argv, *services]


def up(
    project: Project,
    services: Sequence[str] = (),
    *,
    build: bool = False,
    pull: str = "never",
    remove_orphans: bool = True,
) -> Argv:
    """Start detached. Naming ``services`` starts only those (``--no-deps``): a targeted replace."""
    argv = [*project.base(), "up", "--detach", "--pull", pull]
    argv.append("--build" if build else "--no-build")
    if services:
        argv.append("--no-deps")
    elif remove_orphans:
        argv.append("--remove-orphans")
    return [*argv, *services]


def stop(project: Project, services: Sequence[str] = (), *, timeout: int = 20) -> Argv:
    return [*project.base(), "stop", "--timeout", str(timeout), *services]


def down(project: Project, *, timeout: int = 20, volumes: bool = False) -> Argv:
    """Remove the containers and networks; named volumes stay unless ``volumes``."""
    argv = [*project.base(), "down", "--remove-orphans", "--timeout", str(timeout)]
    return [*argv, "--volumes"] if volumes else argv


def ps(project: Project) -> Argv:
    """Every container of the project, stopped ones included (a crash must be visible)."""
    return [*project.base(), "ps", "--all", "--format", "json"]


def containers(project_name: str, docker: str = "docker") -> Argv:
    """Every container of a compose project, one JSON object a line, by compose's own label:
    no compose file or env file is read (a third of the time of ``compose ps``)."""
    label = f"label=com.docker.compose.project={project_name}"
    return [docker, "ps", "--all", "--filter", label, "--format", "{{json .}}"]


def dead_containers(project_name: str, docker: str = "docker") -> Argv:
    """``<id> <service>`` of each container of the project that the engine holds as dead or
    as being removed (the state a removal that failed half-way leaves)."""
    label = f"label=com.docker.compose.project={project_name}"
    fields = '{{.ID}} {{.Label "com.docker.compose.service"}}'
    states = ["--filter", "status=dead", "--filter", "status=removing"]  # either (one key: or)
    return [docker, "ps", "--all", "--filter", label, *states, "--format", fields]


def remove_containers(ids: Sequence[str], docker: str = "docker") -> Argv:
    """Remove the containers; their volumes stay (no ``--volumes``)."""
    return [docker, "rm", "--force", *ids]


def logs(project: Project, service: str, *, tail: int = 50) -> Argv:
    return [*project.base(), "logs", "--no-color", "--tail", str(tail), service]


def exec_(project: Project, service: str, command: Sequence[str]) -> Argv:
    """Run ``command`` in the service's running container, without a TTY (scripts, CI)."""
    return [*project.base(), "exec", "-T", service, *command]


def run_once(
    project: Project, service: str, command: Sequence[str], env_names: Sequence[str] = ()
) -> Argv:
    """A one-off container of the service's image (a migration), removed when it ends; no
    TTY, no dependency started, no port published. ``env_names`` are passed as ``-e NAME``:
    their values come from compose's own environment, never from this argv."""
    argv = [*project.base(), "run", "--rm", "--no-deps", "-T"]
    for name in env_names:
        argv += ["-e", name]
    return [*argv, service, *command]


def image_ids(images: Sequence[str], docker: str = "docker") -> Argv:
    """One image id per line; fails if any image is absent."""
    return [docker, "image", "inspect", "--format", "{{.Id}}", *images]


def restart_counts(containers: Sequence[str], docker: str = "docker") -> Argv:
    """``<full id> <restarts>`` per container; a container that is gone is an error on stderr
    (the others are still printed)."""
    fields = "{{.Id}} {{.RestartCount}}"
    return [docker, "inspect", "--type", "container", "--format", fields, *containers]


def image_sizes(images: Sequence[str], docker: str = "docker") -> Argv:
    """One size in bytes per line (the image's layers, shared ones included)."""
    return [docker, "image", "inspect", "--format", "{{.Size}}", *images]


def data_root(docker: str = "docker") -> Argv:
    """Where the engine keeps images and containers (``/var/lib/docker`` by default)."""
    return [docker, "info", "--format", "{{.DockerRootDir}}"]


def remove_images(images: Sequence[str], docker: str = "docker") -> Argv:
    """Untag the images (layers still used by other tags stay)."""
    return [docker, "image", "rm", *images]


def tag_image(image_id: str, image: str, docker: str = "docker") -> Argv:
    """Name the image ``image_id`` ``image`` (``name:tag``), moving the tag if it named another."""
    return [docker, "image", "tag", image_id, image]


def save_images(images: Sequence[str], docker: str = "docker") -> Argv:
    """The images (their layers once, shared ones included) as one tar on stdout."""
    return [docker, "image", "save", *images]


def load_images(docker: str = "docker") -> Argv:
    """Load a ``save_images`` tar from stdin; layers the engine has are not stored again."""
    return [docker, "image", "load", "--quiet"]


def push_image(reference: str, docker: str = "docker") -> Argv:
    """Push ``reference`` (``registry/repository:tag``) to its registry."""
    return [docker, "image", "push", "--quiet", reference]


def pull_image(reference: str, docker: str = "docker") -> Argv:
    """Pull ``reference`` (``registry/repository@sha256:...``: exactly what was pushed)."""
    return [docker, "image", "pull", "--quiet", reference]


def repo_digests(image: str, docker: str = "docker") -> Argv:
    """The image's ``repository@sha256:...`` references, one per line (those it was pushed or
    pulled as)."""
    fmt = "{{range .RepoDigests}}{{println .}}{{end}}"
    return [docker, "image", "inspect", "--format", fmt, image]


def login(server: str, user: str, docker: str = "docker") -> Argv:
    """Log in to ``server`` as ``user``, the password read from stdin (never an argument)."""
    return [docker, "login", "--username", user, "--password-stdin", server]
