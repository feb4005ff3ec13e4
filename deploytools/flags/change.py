"""Changes to an environment's flags: worked out first, changing nothing (``plan_*``: what a
task would do, and bad input refused), then applied to every host (``apply``), journaled
before and after (who, when, from, to: flags/writer.py).

A change names the flags it sets; it is applied to the state as read under the flags lock,
so a kill made meanwhile is kept unless the change itself sets that flag.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from deploytools.errors import DeployFailure, OperatorError
from deploytools.flags import DEFAULT_PLAN, publish, startup
from deploytools.flags.plan import FlagPlan, load_plan, parse_setting
from deploytools.flags.state import FlagState, shown
from deploytools.flags.writer import FlagChange, kill_change, who, write
from deploytools.site.journal import utc_now

if TYPE_CHECKING:
    from deploytools.site import Site


def plan_of(site: Site) -> FlagPlan:
    return load_plan(site.settings.path(DEFAULT_PLAN))


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
    allowed = {name: flag.kill_switch for name, flag in plan.flags.items()}
    return kill_change(allowed, flags, current)


def apply(site: Site, change: FlagChange, *, keep_going: bool = False) -> FlagState:
    """Write the change to every host (``writer.write``), then the env file's lines of the
    flags read at start and their services; a bad env file is refused before anything."""
    plan = plan_of(site)
    moves = {name: to for name, (_, to) in change.moves().items()}
    if startup.env_lines(plan, moves):
        startup.writable_env_file(site)  # refused before anything changes
    new = write(site, change, keep_going=keep_going)
    startup.restart_for(site, plan, moves)
    return new


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
