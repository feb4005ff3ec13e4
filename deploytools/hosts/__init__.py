"""Hosts: where commands run. ``LocalHost`` here; ``SshHost`` (Fabric) is imported lazily."""

from deploytools.hosts.base import Host, Result
from deploytools.hosts.local import LocalHost

__all__ = ["Host", "LocalHost", "Result"]
