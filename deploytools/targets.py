"""Which hosts an environment runs on: this machine, or its SSH hosts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from deploytools.commands import compose as cmd
from deploytools.errors import OperatorError
from deploytools.hosts.base import Host

if TYPE_CHECKING:  # not imported: a kill by card (flags/killcard.py) must not load pydantic
    from deploytools.config import ComposeSettings, EnvironmentSettings, HostSettings
    from deploytools.hosts.ssh import SshHost

COMPOSE_ENV_FILE = "compose.env"  # in the environment's state directory, on the compose host
# The feature flags' state file apps read, in a directory of its own in the state directory:
# compose bind-mounts the directory read-only (a file mounted alone would keep showing the
# inode an atomic rename replaced).
FLAGS_DIR = "flags"
FLAGS_FILE = "flags.json"


def state_dir(settings: EnvironmentSettings, host: Host) -> str:
    """Per-environment state (journal, lock, process runtime files) on ``host``."""
    return on_host(settings, settings.state_dir, host) + f"/{settings.name}"


def flags_dir(settings: EnvironmentSettings, host: Host) -> str:
    return f"{state_dir(settings, host)}/{FLAGS_DIR}"


def flags_file(settings: EnvironmentSettings, host: Host) -> str:
    """The flag state (flagd JSON) the app's processes on ``host`` read."""
    return f"{flags_dir(settings, host)}/{FLAGS_FILE}"


def backup_dir(settings: EnvironmentSettings, host: Host) -> str:
    return on_host(settings, settings.database.backup_dir, host) + f"/{settings.name}"


def on_host(settings: EnvironmentSettings, relative: str, host: Host) -> str:
    """A config path on ``host``: against the project root locally, the host's root remotely."""
    if host.local:
        return str(settings.path(relative))
    root = next((h.root for h in settings.hosts if h.name == host.name), settings.hosts[0].root)
    return relative if relative.startswith("/") else f"{root.rstrip('/')}/{relative}"


def compose_settings(settings: EnvironmentSettings) -> ComposeSettings:
    """The environment's compose table, or an operator error saying it has none."""
    if settings.compose is None:
        raise OperatorError(
            f"environment {settings.name!r} uses the compose runtime but has no compose table",
            f"add environments.{settings.name}.compose (project_name, files) to deploy.toml",
        )
    return settings.compose


def compose_project(settings: EnvironmentSettings, host: Host) -> cmd.Project:
    """The environment's compose project on ``host``, as the compose runtime acts on it and a
    dump through the database's service (``dump_via_service``) runs in it: here so that the
    database package needs no runtime to name it."""
    conf = compose_settings(settings)
    directory = on_host(settings, conf.directory, host)
    return cmd.Project(
        name=conf.project_name,
        files=tuple(inside(directory, f) for f in conf.files),
        env_file=compose_env_file(settings, host),
        directory=directory,
    )


def compose_env_file(settings: EnvironmentSettings, host: Host) -> str:
    """The env file's copy that compose reads on ``host`` (the runtime writes it there)."""
    return f"{state_dir(settings, host)}/{COMPOSE_ENV_FILE}"


def inside(directory: str, path: str) -> str:
    """``path`` against ``directory`` unless absolute (POSIX or Windows)."""
    if path.startswith("/") or (len(path) > 2 and path[1] == ":"):
        return path
    return f"{directory.rstrip('/')}/{path}"


def connect(
    host: HostSettings,
    settings: EnvironmentSettings,
    notice: Callable[[str], None] | None = None,
) -> SshHost:
    """``host`` (not connected yet: that happens at its first use), its files found as the
    config says (relative: from the project root); ``notice`` hears of a host key recorded by
    --trust-new-hosts."""
    from deploytools.hosts.ssh import SshHost

    files = {"known_hosts": str(settings.path(host.known_hosts))}
    if host.key_file:
        files["key_file"] = str(settings.path(host.key_file))
    return SshHost.from_settings(
        host.model_copy(update=files),
        settings.timeouts,
        trust_new=settings.trust_new_hosts,
        notice=notice,
    )
