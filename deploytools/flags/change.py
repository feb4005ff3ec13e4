"""One flag set by hand, and the listing of an environment's flags (the plan beside the state).

The state file lives in the environment's state directory (``flags.json``). A change is
worked out first (``plan_set``: what it would do, changing nothing), then applied under the
deploy lock with the journal written before and after (``apply``).
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deploytools import targets
from deploytools.errors import OperatorError, one_line
from deploytools.flags import state
from deploytools.flags.plan import DEFAULT_PLAN, FlagPlan, load_plan, parse_setting, shown
from deploytools.flags.state import FlagState
from deploytools.site.journal import utc_now

if TYPE_CHECKING:
    from deploytools.site import Site

STATE_FILE = "flags.json"


def plan_of(site: Site) -> FlagPlan:
    return load_plan(site.settings.path(DEFAULT_PLAN))


def state_path(site: Site) -> str:
    """The state file on the primary (the one host of a local environment)."""
    return f"{targets.state_dir(site.settings, site.primary)}/{STATE_FILE}"


def listing(site: Site) -> list[dict[str, Any]]:
    """Every flag of the plan, then any the state file has beside them: its setting, the
    stage applied, who changed it and when (nothing for a flag never set: its default)."""
    plan = plan_of(site)
    current = state.read(site.primary, state_path(site)) or FlagState()
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


@dataclass(frozen=True)
class FlagChange:
    flag: str
    before: int | None  # None: not in the state file (the app falls back to FEATURE_*)
    after: int
    path: str

    def describe(self) -> str:
        was = "not set" if self.before is None else shown(self.before)
        return f"{self.flag}: {was} -> {shown(self.after)} ({self.path})"


def plan_set(site: Site, flag: str, value: str) -> FlagChange:
    """What ``flags.set FLAG VALUE`` would do; bad input is refused before anything changes."""
    plan = plan_of(site)
    if flag not in plan.flags:
        raise OperatorError(
            f"unknown flag {flag!r} (the flags of {DEFAULT_PLAN} are: {', '.join(plan.flags)})",
            f"use one of them, or add [flags.{flag}] to {DEFAULT_PLAN}",
        )
    try:
        after = parse_setting(value)
    except ValueError as exc:
        raise OperatorError(
            f"flag {flag}: {value!r}: {exc}", "pass on, off or a whole percentage 0-100"
        ) from None
    path = state_path(site)
    current = state.read(site.primary, path) or FlagState()
    before = current.flags[flag].percent if flag in current.flags else None
    return FlagChange(flag, before, after, path)


def apply(site: Site, change: FlagChange) -> None:
    """Write the state with the change, journaled before and after. The caller holds the
    lock; the file is read again under it, so a change made meanwhile is kept."""
    who = f"{getpass.getuser()}@{socket.gethostname()}"
    record = {"flag": change.flag, "to": change.after, "by": who, "file": change.path}
    site.journal.append("flags.set", **record, result="started")
    try:
        current = state.read(site.primary, change.path) or FlagState()
        new = current.changed(
            {change.flag: change.after}, by=who, at=utc_now(), stage=current.stage
        )
        site.primary.makedirs(targets.state_dir(site.settings, site.primary))
        state.write(site.primary, change.path, new)
    except Exception as exc:
        site.journal.append("flags.set", **record, result="failed", error=one_line(exc))
        raise
    was = current.flags.get(change.flag)
    record["from"] = was.percent if was else None
    site.journal.append("flags.set", **record, result="ok")
