"""Which hosts an environment runs on: this machine, or its SSH hosts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from deploytools.config import EnvironmentSettings, HostSettings
from deploytools.hosts.base import Host

if TYPE_CHECKING:
    from deploytools.hosts.ssh import SshHost


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
