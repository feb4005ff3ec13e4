"""The gate's checks: each module registers its own; ``ordered`` gives them in the order the
table shows them (cheap and basic first, so that a broken config is the first row)."""

from deploytools.gate.checks import compose, config, docs, envfiles, flags, migrations, plan
from deploytools.gate.registry import CHECKS, Check

ORDER = (
    "config",
    "env-files",
    "compose",
    "plan",
    "flags",
    "migrations",
    "migration-roundtrip",
    "docs-drift",
)


def ordered() -> list[Check]:
    """Every registered check: those of ``ORDER`` first, then any other (a project's own)."""
    return sorted(
        CHECKS.values(), key=lambda c: ORDER.index(c.name) if c.name in ORDER else len(ORDER)
    )


__all__ = ["compose", "config", "docs", "envfiles", "flags", "migrations", "ordered", "plan"]
