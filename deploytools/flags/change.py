"""Changes to an environment's flags: worked out first, changing nothing (``plan_*``: what a
task would do, and bad input refused), then applied to every host (``apply``), journaled
before and after (who, when, from, to).

A change names the flags it sets; it is applied to the state as read under the flags lock,
so a kill made meanwhile is kept unless the change itself sets that flag.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from deploytools.errors import DeployFailure, OperatorError, one_line
from deploytools.flags import publish, startup
from deploytools.flags.plan import DEFAULT_PLAN, FlagPlan, load_plan, parse_setting, shown
from deploytools.flags.state import FlagState
from deploytools.site.journal import utc_now

if TYPE_CHECKING:
    from deploytools.site import Site


def plan_of(site: Site) -> FlagPlan:
    return load_plan(site.settings.path(DEFAULT_PLAN))


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


def known_flag(plan: FlagPlan, flag: str) -> None:
    if flag not in plan.flags:
        raise OperatorError(
            f"unknown flag {flag!r} (the flags of {DEFAULT_PLAN} are: {', '.join(plan.flags)})",
            f"use one of them, or add [flags.{flag}] to {DEFAULT_PLAN}",
        )


def plan_set(site: Site, flag: str, value: str) -> FlagChange:
    """``flags.set FLAG VALUE``."""
    known_flag(plan_of(site), flag)
    try:
        after = parse_setting(value)
    except ValueError as exc:
        raise OperatorError(
            f"flag {flag}: {value!r}: {exc}", "pass on, off or a whole percentage 0-100"
        ) from None
    return FlagChange("set", {flag: after}, publish.read(site))


def plan_stage(site: Site, stage: str, *, force: bool, today: date | None = None) -> FlagChange:
    """``flags.stage STAGE``: every flag as the plan has it once ``stage`` is applied.

    Going back is always allowed; going forward past the next stage, or before a stage's
    ``not_before``, needs ``force``."""
    plan = plan_of(site)
    names = list(plan.stages)
    if stage not in plan.stages:
        raise OperatorError(
            f"unknown stage {stage!r} (the stages of {DEFAULT_PLAN} are: "
            f"{', '.join(names) or 'none'})",
            f"use one of them, or add [stages.{stage}] to {DEFAULT_PLAN}",
        )
    current = publish.read(site)
    at = names.index(current.stage) if current.stage in plan.stages else -1
    target = names.index(stage)
    if target > at + 1 and not force:
        skipped = ", ".join(names[at + 1 : target])
        raise OperatorError(
            f"stage {stage} skips {skipped} (the environment is at "
            f"{current.stage or 'no stage yet'})",
            f"apply {names[at + 1]} first, or pass --force to skip forward",
        )
    waiting = not_yet(plan, stage, today)
    if waiting and target > at and not force:
        raise OperatorError(
            f"stage {stage} is not to be applied before {waiting}",
            "wait for that date, or pass --force",
        )
    return FlagChange("stage", plan.settings_at(stage), current, stage=stage)


def not_yet(plan: FlagPlan, stage: str, today: date | None = None) -> str | None:
    """The stage's ``not_before`` if it has not passed yet (as the plan wrote it)."""
    when = plan.stages[stage].not_before
    if when is None:
        return None
    if isinstance(when, datetime):
        now = datetime.now(UTC)
        return (
            when.isoformat() if now < (when if when.tzinfo else when.replace(tzinfo=UTC)) else None
        )
    return when.isoformat() if (today or datetime.now(UTC).date()) < when else None


def plan_kill(site: Site, flags: list[str]) -> FlagChange:
    """``flags.kill NAME...`` (empty: every flag that allows it): off, with no guard."""
    plan = plan_of(site)
    current = publish.read(site)
    for flag in flags:
        known_flag(plan, flag)
        if not plan.flags[flag].kill_switch:
            raise OperatorError(
                f"flag {flag} has kill_switch = false in {DEFAULT_PLAN}",
                f"turn it off with `invoke flags.set {flag} off` (under the deploy lock)",
            )
    names = flags or [name for name, flag in plan.flags.items() if flag.kill_switch]
    notes = tuple(
        f"{name}: kill_switch = false, left as it is"
        for name, flag in plan.flags.items()
        if not flags and not flag.kill_switch
    )
    return FlagChange("kill", dict.fromkeys(names, 0), current, notes=notes)


def apply(site: Site, change: FlagChange, *, keep_going: bool = False) -> FlagState:
    """Write the change to every host, journaled before and after; the state written.

    A host that fails: the others are set back to the state before (the change did not
    happen, and says so); with ``keep_going`` (a kill) they keep it and the failure names
    the hosts that did not get it."""
    by, names, plan = who(), site.host_names, plan_of(site)
    moves = {name: to for name, (_, to) in change.moves().items()}
    if startup.env_lines(plan, moves):
        startup.writable_env_file(site)  # refused before anything changes
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
    startup.restart_for(site, plan, moves)
    return new


def _failed(
    site: Site,
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


def restore(site: Site, before: FlagState, applied: FlagState) -> FlagState:
    """Undo a change whose guards failed: every flag it set that still has the value it set
    goes back to what it was (a flag killed meanwhile stays off), the stage too."""
    by = who()
    with publish.flags_lock(site, "flags.restore"):
        current = publish.read(site)
        flags, changes = dict(current.flags), {}
        for name, value in applied.flags.items():
            now, was = current.flags.get(name), before.flags.get(name)
            if now is None or now.percent != value.percent or was == value:
                continue
            if was is None:
                del flags[name]
            else:
                flags[name] = was
            changes[name] = {"from": now.percent, "to": was.percent if was else None}
        new = replace(current, flags=flags, stage=before.stage, changed_by=by, changed_at=utc_now())
        record = {
            "changes": changes,
            "stage": before.stage,
            "stage_before": current.stage,
            "by": by,
        }
        failed = publish.write_all(site, new, site.host_names)
        result = {"result": "failed", "hosts_failed": list(failed)} if failed else {"result": "ok"}
        site.journal.append("flags.restore", **record, **result)
    if not failed:
        startup.restart_for(site, plan_of(site), {n: c["to"] for n, c in changes.items()})
    if failed:
        raise DeployFailure(
            "the previous flag state could not be written to "
            + "; ".join(f"{name}: {error}" for name, error in failed.items()),
            "reach those hosts, then apply the stage you want with `invoke flags.stage`",
        )
    return new


def plan_advance(site: Site, today: date | None = None) -> FlagChange | None:
    """``flags.advance``: the stage after the current one, or None when it is the last.

    Refused (``DeployFailure``: the world says not yet) before the next stage's
    ``not_before``, and when the flags are no longer what the current stage set (a kill, a
    change by hand): advancing from cron must not bring a killed flag back."""
    plan = plan_of(site)
    current = publish.read(site)
    names = list(plan.stages)
    at = names.index(current.stage) if current.stage in plan.stages else -1
    if at == len(names) - 1:
        return None
    following = names[at + 1]
    waiting = not_yet(plan, following, today)
    if waiting:
        raise DeployFailure(
            f"stage {following} is not to be applied before {waiting}",
            "run flags.advance again after that (it is made to run from cron or CI)",
        )
    if current.stage is not None:
        meant = plan.settings_at(current.stage)
        differs = [
            f"{name} is {shown(value.percent)}, stage {current.stage} set {shown(meant[name])}"
            for name, value in current.flags.items()
            if name in meant and value.percent != meant[name]
        ]
        if differs:
            raise DeployFailure(
                "the flags are not what stage "
                + current.stage
                + " set ("
                + "; ".join(differs)
                + "): a kill or a change by hand since",
                "apply a stage on purpose with `invoke flags.stage STAGE`",
            )
    return FlagChange("stage", plan.settings_at(following), current, stage=following)
