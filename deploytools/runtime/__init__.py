"""How a stack runs on a host: ``compose`` (docker compose v2) or ``process`` (plain processes).

``runtime_for(settings, host, env_values)`` picks the one the environment names; both share
the ``Runtime`` protocol of ``runtime.base``, which is all health waiting and the steps use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from deploytools.config import EnvironmentSettings
from deploytools.hosts.base import Host
from deploytools.runtime.base import Runtime, ServiceStatus

if TYPE_CHECKING:
    from deploytools.codetree import Archives


def runtime_for(
    settings: EnvironmentSettings,
    host: Host,
    env_values: Mapping[str, str] | None = None,
    *,
    control: Host | None = None,
    archives: Archives | None = None,
) -> Runtime:
    """The environment's runtime on ``host``; ``env_values`` default to the local env file;
    ``control`` is the machine with the checkout (default: ``host``); ``archives`` the run's
    release archives, shared by the hosts a process release ships to."""
    if settings.runtime == "compose":
        from deploytools.runtime.compose import ComposeRuntime

        return ComposeRuntime(settings, host, control=control)
    from deploytools.runtime.process import ProcessRuntime

    if env_values is None:
        from deploytools.env.file import load_values

        env_values = load_values(settings.path(settings.env_file))
    return ProcessRuntime(settings, host, env_values, control=control, archives=archives)


__all__ = ["Runtime", "ServiceStatus", "runtime_for"]
