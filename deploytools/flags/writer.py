"""A flag change and its writing: to every host at once under the flags lock, journaled
before and after (who, when, from, to).

Free of pydantic and of the config (``FlagSite`` is all it needs), so that a kill by the
kill card (flags/killcard.py) writes through the same code as every other change.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deploytools.errors import DeployFailure, one_line
from deploytools.flags import publish
from deploytools.flags.publish import FlagSite
from deploytools.flags.state import FlagState, shown
from deploytools.site.journal import utc_now


def who() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


@dataclass(frozen=True)
class FlagChange:
    action: str  # set, stage, kill, restore: the journal's kind is flags.<action>
    settings: Mapping[str, int]  # flag -> percentage it gets
    before: FlagState  # as read when the change was planned
    stage: str | None = None  # the stage it applies (None: set, kill keep the current one)
    notes: tuple[str, ...] = field(default=())  # said with the plan (a flag skipped, ...)

    def moves(self) -> dict[str, tuple[int | None, int]]:
        """The flags whose percentage changes: from (None: not set) and to."""
        found = {}
        for name, after in self.settings.items():
            was = self.before.flags.get(name)
            if was is None or was.percent != after:
                found[name] = (was.percent if was else None, after)
        return found

    def describe(self) -> list[str]:
        lines = [
            f"{name}: {'not set' if was is None else shown(was)} -> {shown(to)}"
            for name, (was, to) in self.moves().items()
        ]
        if self.stage is not None and self.stage != self.before.stage:
            lines.append(f"stage: {self.before.stage or 'none'} -> {self.stage}")
        return lines or ["nothing changes"]


def kill_change(
    kill_switch: Mapping[str, bool], flags: list[str], current: FlagState
) -> FlagChange:
    """``flags.kill``: the ``flags`` named (empty: every flag whose ``kill_switch`` allows it)
    to off; ``kill_switch``: the plan's flags and whether each allows it (checked by the
    caller for a flag named)."""
    names = flags or [name for name, allowed in kill_switch.items() if allowed]
    notes = tuple(
        f"{name}: kill_switch = false, left as it is"
        for name, allowed in kill_switch.items()
        if not flags and not allowed
    )
    return FlagChange("kill", dict.fromkeys(names, 0), current, notes=notes)


def write(site: FlagSite, change: FlagChange, *, keep_going: bool = False) -> FlagState:
    """Write the change to every host under the flags lock, journaled before and after; the
    state written.

    A host that fails: the others are set back to the state before (the change did not
    happen, and says so); with ``keep_going`` (a kill) they keep it and the failure names
    the hosts that did not get it."""
    by, names = who(), site.host_names
    with publish.flags_lock(site, f"flags.{change.action}"):
        current = publish.read(site)
        stage = change.stage or current.stage
        new = current.changed(change.settings, by=by, at=utc_now(), stage=stage)
        record = _record(change, current, by)
        site.journal.append(f"flags.{change.action}", **record, result="started")
        try:
            failed = publish.write_all(site, new, names)
        except BaseException as exc:
            site.journal.append(
                f"flags.{change.action}", **record, result="failed", error=one_line(exc)
            )
            raise
        if failed:
            _failed(site, change, record, current, failed, keep_going)
        site.journal.append(f"flags.{change.action}", **record, result="ok")
    return new


def _failed(
    site: FlagSite,
    change: FlagChange,
    record: dict[str, Any],
    before: FlagState,
    failed: dict[str, str],
    keep_going: bool,
) -> None:
    said = "; ".join(f"{name}: {error}" for name, error in failed.items())
    done = [name for name in site.host_names if name not in failed]
    if keep_going:
        problem = f"flags.{change.action} reached {', '.join(done) or 'no host'}, not {said}"
    else:
        back = publish.write_all(site, before, done)
        problem = f"flags.{change.action} not applied: {said}" + (
            f"; and setting {', '.join(back)} back failed too: {'; '.join(back.values())}"
            if back
            else "; the other hosts were set back"
        )
    site.journal.append(
        f"flags.{change.action}",
        **record,
        result="failed",
        error=problem,
        hosts_failed=list(failed),
    )
    raise DeployFailure(
        problem, f"reach {', '.join(failed)} (invoke hosts.check), then run it again"
    )


def _record(change: FlagChange, current: FlagState, by: str) -> dict[str, Any]:
    """What the journal says of a change: each flag from and to, the stage, who."""
    moves = FlagChange(change.action, change.settings, current, change.stage).moves()
    return {
        "changes": {name: {"from": was, "to": to} for name, (was, to) in moves.items()},
        "stage": change.stage or current.stage,
        "stage_before": current.stage,
        "by": by,
    }
