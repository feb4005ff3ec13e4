"""deploy and rollback: the two commands operators type most."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from invoke.context import Context

from deploytools.errors import OperatorError
from deploytools.tasks._support import (
    DRY_RUN_HELP,
    ENV_HELP,
    HOSTS_HELP,
    JSON_HELP,
    LOCK_WAIT_HELP,
    TRUST_NEW_HOSTS_HELP,
    open_site,
    task,
    trusting,
)

if TYPE_CHECKING:
    from deploytools.pipeline.engine import PipelineResult
    from deploytools.ui import Ui

@task(
    help={
        "env": ENV_HELP,
        "dry_run": DRY_RUN_HELP,
        "allow_dirty": "deploy a working tree with uncommitted changes (always allowed for local)",
        "lock_wait": LOCK_WAIT_HELP,
        "hosts": HOSTS_HELP,
        "trust_new_hosts": TRUST_NEW_HOSTS_HELP,
        "json": JSON_HELP,
    }
)
def deploy(
    c: Context,
    ui: Ui,
    env: str | None = None,
    dry_run: bool = False,
    allow_dirty: bool = False,
    lock_wait: float = 0.0,
    hosts: str | None = None,
    trust_new_hosts: bool = False,
    json: bool = False,
) -> None:
    """Validate, lock, back up, migrate, build, start, wait healthy, verify Celery, record."""
    from deploytools.pipelines.deploy import deploy as run_deploy

    with open_site(c, env, ui, trusting(trust_new_hosts), hosts) as site:
        result = run_deploy(
            site, command=_command(), dry_run=dry_run, allow_dirty=allow_dirty, lock_wait=lock_wait
        )
    _finish(ui, result, site.settings.name)


@task(
    help={
        "tag": "release tag to return to (see `invoke releases --env NAME`)",
        "env": ENV_HELP,
        "dry_run": DRY_RUN_HELP,
        "restore_db": "past an irreversible migration, restore the backup recorded with the tag",
        "lock_wait": LOCK_WAIT_HELP,
        "hosts": HOSTS_HELP,
        "trust_new_hosts": TRUST_NEW_HOSTS_HELP,
        "json": JSON_HELP,
    }
)
def rollback(
    c: Context,
    ui: Ui,
    tag: str = "",
    env: str | None = None,
    dry_run: bool = False,
    restore_db: bool = False,
    lock_wait: float = 0.0,
    hosts: str | None = None,
    trust_new_hosts: bool = False,
    json: bool = False,
) -> None:
    """Return to a recorded release: its images (rebuilt from the tag if gone) and db revision."""
    from deploytools.pipelines.rollback import rollback as run_rollback

    if not tag:
        raise OperatorError("no --tag given", "pass --tag TAG (see `invoke releases --env NAME`)")
    with open_site(c, env, ui, trusting(trust_new_hosts), hosts) as site:
        result = run_rollback(
            site,
            tag,
            command=_command(),
            dry_run=dry_run,
            restore_db=restore_db,
            lock_wait=lock_wait,
        )
    _finish(ui, result, site.settings.name)


def _finish(ui: Ui, result: PipelineResult | None, env: str) -> None:
    from deploytools.pipeline.engine import raise_if_failed

    if result is None:  # dry run: the plan was shown
        return
    if ui.json_mode:
        ui.emit_json(result.as_dict())
    else:
        # The live list showed every step; the error below says what failed and was undone.
        ui.result(f"{result.name} summary ({result.duration:.1f}s): {_totals(result)}")
        facts = {k: v for o in result.outcomes for k, v in o.detail.items()}
        ui.info(
            f"release {facts.get('tag') or facts.get('recorded') or '-'}, "
            f"db revision {facts.get('to') or facts.get('revision') or '-'}, "
            f"backup {facts.get('backup') or '-'}"
        )
    raise_if_failed(
        result,
        f"`invoke history --env {env}` and the service logs (`invoke stack.logs --env {env}`)",
    )
    ui.success(f"{result.name} of {env} done in {result.duration:.1f}s")


def _totals(result: PipelineResult) -> str:
    """``9 done, 1 skipped (backup), 1 failed (migrate)``: how many steps ended how, naming
    every step that did not end done."""
    ended: dict[str, list[str]] = {}
    for outcome in result.outcomes:
        ended.setdefault(outcome.status, []).append(outcome.name.removeprefix("undo "))
    return ", ".join(
        f"{len(names)} {status}" + ("" if status == "done" else f" ({', '.join(names)})")
        for status, names in ended.items()
    )


def _command() -> str:
    return " ".join(["invoke", *sys.argv[1:]])[:200]
