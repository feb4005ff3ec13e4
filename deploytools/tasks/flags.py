"""flags.*: see and change the feature flags of an environment (config/flags.toml, the state
file apps read on every host). The work lives in ``deploytools.flags``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from invoke.context import Context

from deploytools.errors import DeployFailure, DeployToolsError, OperatorError, one_line
from deploytools.tasks._support import (
    DRY_RUN_HELP,
    ENV_HELP,
    JSON_HELP,
    LOCK_WAIT_HELP,
    env_name,
    invoke_settings,
    locked,
    open_site,
    task,
)

if TYPE_CHECKING:
    from deploytools.flags.killcard import CardKey
    from deploytools.flags.writer import FlagChange
    from deploytools.site import Site
    from deploytools.ui import Ui


@task(name="list", help={"env": ENV_HELP, "json": JSON_HELP})
def list_(c: Context, ui: Ui, env: str | None = None, json: bool = False) -> None:
    """Show every flag: its state, the stage applied, who changed it and when; and any host
    whose copy of the state differs from the primary's."""
    from deploytools.flags.report import drift, listing

    with _flags_site(c, env, ui) as site:
        rows, differs = listing(site), drift(site)
        if json:
            ui.emit_json({"flags": rows, "hosts_differing": differs})
            return
        ui.table(
            f"flags of {site.settings.name} ({site.flags_file(site.host_names[0])})",
            ["flag", "state", "stage", "changed", "by"],
            [
                [
                    r["flag"] + ("" if r["in_plan"] else " (not in the plan)"),
                    r["state"] if r["set"] else f"{r['state']} (default, not set)",
                    r["stage"] or "",
                    r["changed_at"] or "",
                    r["changed_by"] or "",
                ]
                for r in rows
            ],
        )
        for name, how in differs.items():
            ui.warn(
                f"{name} differs from the primary: {how} (a deploy or the next change fixes it)"
            )


@task(
    name="set",
    help={
        "name": "the flag, as config/flags.toml names it",
        "value": "on, off or a percentage 0-100 of the keys (users) that get the feature",
        "env": ENV_HELP,
        "dry_run": DRY_RUN_HELP,
        "lock_wait": LOCK_WAIT_HELP,
    },
)
def set_(
    c: Context,
    ui: Ui,
    name: str,
    value: str,
    env: str | None = None,
    dry_run: bool = False,
    lock_wait: float = 0.0,
) -> None:
    """Set one flag to on, off or a percentage, on every host (apps see it within 0.2 s)."""
    from deploytools.flags.change import plan_set

    with _flags_site(c, env, ui) as site:
        _change(
            site, ui, plan_set(site, name, value), f"flags.set {name} {value}", dry_run, lock_wait
        )


@task(
    help={
        "name": "the stage, as config/flags.toml names it (week1, week2, ...)",
        "env": ENV_HELP,
        "force": "apply it even though it skips stages forward or its not_before is to come",
        "dry_run": DRY_RUN_HELP,
        "lock_wait": LOCK_WAIT_HELP,
    },
)
def stage(
    c: Context,
    ui: Ui,
    name: str,
    env: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    lock_wait: float = 0.0,
) -> None:
    """Apply a stage of the rollout plan on every host (going back is always allowed)."""
    from deploytools.flags.change import plan_stage

    with _flags_site(c, env, ui) as site:
        change = plan_stage(site, name, force=force)
        _change(site, ui, change, f"flags.stage {name}", dry_run, lock_wait)


@task(help={"env": ENV_HELP, "dry_run": DRY_RUN_HELP, "lock_wait": LOCK_WAIT_HELP})
def advance(
    c: Context, ui: Ui, env: str | None = None, dry_run: bool = False, lock_wait: float = 0.0
) -> None:
    """Apply the next stage if its not_before has passed and the flags are still what the
    current stage set (for cron or CI: nothing to do exits 0, not yet exits 1)."""
    from deploytools.flags.change import plan_advance

    with _flags_site(c, env, ui) as site:
        change = plan_advance(site)
        if change is None:
            ui.result(f"{site.settings.name} is at the plan's last stage: nothing to advance")
            return
        if change.before.stage is not None:
            _current_stage_holds(site, ui, change.before.stage)
        _change(site, ui, change, f"flags.advance to {change.stage}", dry_run, lock_wait)


@task(
    help={
        "name": "the flag to turn off (or --all)",
        "all": "every flag whose kill_switch the plan allows",
        "env": ENV_HELP,
        "dry_run": DRY_RUN_HELP,
    },
    spared={"name": "all"},
)
def kill(
    c: Context,
    ui: Ui,
    name: str | None = None,  # None, not "": invoke fills only an unset positional
    all: bool = False,
    env: str | None = None,
    dry_run: bool = False,
) -> None:
    """Turn a flag off at once on every host: no guard, and no wait for a deploy's lock
    (apps see it within 0.2 s; a host that cannot be reached is named, the others keep it)."""
    from deploytools.flags import killcard, publish
    from deploytools.flags.writer import kill_change, write

    if bool(name) == all:
        raise OperatorError(
            "flags.kill needs one flag name or --all", "pass NAME, or --all for every flag"
        )
    flags = [name] if name else []
    key = _card_key(c, env)
    card = None if dry_run else killcard.find(key, flags)
    if card is not None:  # the config as the last flags command loaded it: no need to load it
        here = killcard.CardSite(card, ui)
        change = kill_change(card.kill_switch, flags, publish.read(here))
        _notes(ui, change)
        write(here, change, keep_going=True)
        _said(ui, change, "killed", success=True)
        return
    from deploytools.flags.change import apply, plan_kill

    with _flags_site(c, env, ui, key) as site:
        change = plan_kill(site, flags)
        _notes(ui, change)
        if dry_run:
            _dry_run(site, ui, change, "would kill")
            return
        apply(site, change, keep_going=True)
        _said(ui, change, "killed", success=True)


@task(
    help={
        "env": ENV_HELP,
        "flag": "only the changes of this flag",
        "json": JSON_HELP,
    },
)
def history(
    c: Context, ui: Ui, env: str | None = None, flag: str | None = None, json: bool = False
) -> None:
    """Every flag change of the environment: when, what, from and to, the stage, by whom."""
    from deploytools.flags.change import known_flag, plan_of
    from deploytools.flags.report import changes_said
    from deploytools.flags.report import history as changes

    with _flags_site(c, env, ui) as site:
        rows = changes(site, flag)
        if flag is not None and not rows:
            known_flag(plan_of(site), flag)  # a flag the plan has: it has no change yet
        if json:
            ui.emit_json(rows)
            return
        ui.table(
            f"flag changes of {site.settings.name}",
            ["at", "action", "changes", "stage", "by", "result"],
            [
                [
                    r["at"] or "",
                    r["action"],
                    changes_said(r["changes"]),
                    r["stage"] or "",
                    r["by"] or "",
                    r["result"] + (f": {r['error']}" if r["error"] else ""),
                ]
                for r in rows
            ],
        )


def _change(
    site: Site, ui: Ui, change: FlagChange, command: str, dry_run: bool, lock_wait: float
) -> None:
    """Apply a planned change under the deploy lock (a change never races a deploy); a stage
    is then watched (its guards and the services' health) for its soak, and the first
    failure (or a signal) sets back every flag it changed and fails the task."""
    from deploytools.flags.change import apply, plan_of, restore
    from deploytools.flags.guards import planned, watch

    stage = plan_of(site).stages[change.stage] if change.stage is not None else None
    watched = (
        planned(site, change.stage, stage)
        if change.stage is not None and stage is not None and (stage.guards or stage.soak)
        else None
    )
    if dry_run:
        _dry_run(site, ui, change, "would change")
        for line in watched.describe() if watched else []:
            ui.result(f"then: {line}")
        return
    with _flag_lock(site, command, lock_wait):
        applied = apply(site, change)
        _said(ui, change, "changed", success=True)
        if watched is None:
            return
        try:
            watch(watched, ui)
        except (DeployFailure, KeyboardInterrupt) as exc:
            said = one_line(exc) or "interrupted"
            site.journal.append("flags.guard", stage=change.stage, result="failed", error=said)
            restore(site, change.before, applied)
            ui.warn(f"stage {change.stage} did not hold: the flags it changed are set back")
            raise


def _current_stage_holds(site: Site, ui: Ui, stage: str) -> None:
    """``flags.advance`` goes on only while the current stage's guards hold."""
    from deploytools.flags.change import plan_of
    from deploytools.flags.guards import check_once, planned

    conf = plan_of(site).stages[stage]
    if not conf.guards:
        return
    try:
        check_once(planned(site, stage, conf), ui)
    except DeployFailure as exc:
        raise DeployFailure(
            f"not advancing: the guards of the current stage {stage} do not hold: {exc.problem}",
            exc.fix,
        ) from None


@contextmanager
def _flags_site(c: Context, env: str | None, ui: Ui, key: CardKey | None = None) -> Iterator[Site]:
    """``open_site`` for a flags task; when the task has done its work, the environment's
    kill card is kept (flags/killcard.py): the next kill need not load the config. ``key``:
    the card's key if the task has it already (a kill that found no card)."""
    from deploytools.flags import killcard
    from deploytools.flags.change import plan_of

    key = key or _card_key(c, env)
    with open_site(c, env, ui) as site:
        yield site
        with suppress(DeployToolsError):  # a plan that does not load keeps no card
            killcard.keep(key, site, plan_of(site))


def _card_key(c: Context, env: str | None) -> CardKey | None:
    from deploytools.flags import killcard

    return killcard.key_of(invoke_settings(c), env_name(c, env))


@contextmanager
def _flag_lock(site: Site, command: str, wait: float) -> Iterator[None]:
    """The deploy lock; another run holding it is a change refused (exit 2, nothing written)."""
    from deploytools.site.lock import LockHeld

    try:
        with locked(site, command, wait):
            yield
    except LockHeld as exc:
        raise OperatorError(exc.problem, exc.fix) from None


def _notes(ui: Ui, change: FlagChange) -> None:
    for note in change.notes:
        ui.warn(note)


def _said(ui: Ui, change: FlagChange, verb: str, *, success: bool = False) -> None:
    say = ui.success if success else ui.result
    for line in change.describe():
        say(f"{verb}: {line}")


def _dry_run(site: Site, ui: Ui, change: FlagChange, verb: str) -> None:
    """What the change would do, the env file and services of start-time flags included."""
    from deploytools.flags.change import plan_of
    from deploytools.flags.startup import planned

    _said(ui, change, verb)
    moves = {name: to for name, (_, to) in change.moves().items()}
    for line in planned(site, plan_of(site), moves):
        ui.result(f"{verb}: {line}")
