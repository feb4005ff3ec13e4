"""What ``flags.list`` and ``flags.history`` show: the plan beside the state of record, the hosts
whose copy differs from it, and the journal's flag changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deploytools.flags import publish
from deploytools.flags.change import plan_of
from deploytools.flags.plan import parse_setting
from deploytools.flags.state import FlagState, shown

if TYPE_CHECKING:
    from deploytools.site import Site


def listing(site: Site) -> list[dict[str, Any]]:
    """Every flag of the plan, then any the state has beside them: its setting, the stage
    applied, who changed it and when (nothing for a flag never set: its default)."""
    plan = plan_of(site)
    current = publish.read(site)
    rows = []
    for name in [*plan.flags, *(n for n in current.flags if n not in plan.flags)]:
        value = current.flags.get(name)
        flag = plan.flags.get(name)
        percent = value.percent if value else parse_setting(flag.default if flag else "off")
        rows.append(
            {
                "flag": name,
                "state": shown(percent),
                "percent": percent,
                "set": value is not None,
                "stage": current.stage if value else None,
                "changed_at": value.changed_at if value else None,
                "changed_by": value.changed_by if value else None,
                "in_plan": flag is not None,
            }
        )
    return rows


def drift(site: Site) -> dict[str, str]:
    """The hosts whose flag file differs from the primary's, with how (none on one host)."""
    if len(site.host_names) < 2:
        return {}
    found = publish.read_each(site)
    primary = found.pop(site.host_names[0])
    expected = _percents(primary if isinstance(primary, FlagState) else FlagState())
    differs = {}
    for name, seen in found.items():
        if isinstance(seen, str):
            differs[name] = f"not read: {seen}"
        elif seen is None:
            differs[name] = "has no flag file" if expected else ""
        elif (got := _percents(seen)) != expected:
            differs[name] = ", ".join(
                f"{flag} {_shown(got.get(flag))} (primary: {_shown(expected.get(flag))})"
                for flag in sorted(set(got) | set(expected))
                if got.get(flag) != expected.get(flag)
            )
    return {name: how for name, how in differs.items() if how}


def history(site: Site, flag: str | None = None) -> list[dict[str, Any]]:
    """Each finished flag change of the site's journal (oldest first), or those of ``flag``."""
    rows = []
    for record in site.journal.records():
        kind = str(record.get("kind", ""))
        if not kind.startswith("flags.") or record.get("result") == "started":
            continue
        changes = record.get("changes") or {}
        if flag is not None and flag not in changes:
            continue
        rows.append(
            {
                "at": record.get("at"),
                "action": kind.removeprefix("flags."),
                "changes": changes,
                "stage": record.get("stage"),
                "by": record.get("by"),
                "result": record.get("result"),
                "error": record.get("error"),
            }
        )
    return rows


def changes_said(changes: dict[str, dict[str, int | None]]) -> str:
    return (
        ", ".join(
            f"{name} {_shown(move.get('from'))} -> {_shown(move.get('to'))}"
            for name, move in changes.items()
        )
        or "no flag changed"
    )


def _percents(state: FlagState) -> dict[str, int]:
    return {name: value.percent for name, value in state.flags.items()}


def _shown(percent: int | None) -> str:
    return "not set" if percent is None else shown(percent)
