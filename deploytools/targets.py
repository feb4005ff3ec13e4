"""Which hosts an environment runs on: this machine, or its SSH hosts."""

from __future__ import annotations

from deploytools.config import EnvironmentSettings, HostSettings, TimeoutSettings
from deploytools.hosts.base import Host
from deploytools.hosts.local import LocalHost


def hosts_for(settings: EnvironmentSettings) -> list[Host]:
    """One ``Host`` per configured host; ``LocalHost`` when the environment has none."""
    if not settings.hosts:
        return [LocalHost()]
    return [connect(h, settings.timeouts) for h in settings.hosts]


def primary(settings: EnvironmentSettings) -> Host:
    """The host that owns shared state (database backups, the deploy lock, the journal)."""
    if not settings.hosts:
        return LocalHost()
    return connect(settings.hosts[0], settings.timeouts)


def state_dir(settings: EnvironmentSettings, host: Host) -> str:
    """Per-environment state (journal, lock, process runtime files) on ``host``."""
    return on_host(settings, settings.state_dir, host) + f"/{settings.name}"


def backup_dir(settings: EnvironmentSettings, host: Host) -> str:
    return on_host(settings, settings.database.backup_dir, host) + f"/{settings.name}"


def on_host(settings: EnvironmentSettings, relative: str, host: Host) -> str:
    """A config path on ``host``: against the project root locally, the host's root remotely."""
    if host.local:
        return str(settings.path(relative))
    root = next((h.root for h in settings.hosts if h.name == host.name), settings.hosts[0].root)
    return relative if relative.startswith("/") else f"{root.rstrip('/')}/{relative}"


def connect(host: HostSettings, timeouts: TimeoutSettings) -> Host:
    from deploytools.hosts.ssh import SshHost

    return SshHost.from_settings(host, timeouts)
