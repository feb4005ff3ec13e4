"""Running a pipeline: the run's context, the plan of a dry run, the run under the lock.

The lock is taken by a step (so it shows in the plan and the progress view) and released here,
in ``finally``: on success, failure, Ctrl-C and SIGTERM alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from deploytools.interrupts import INTERRUPTS
from deploytools.pipeline.engine import Pipeline, PipelineResult, Stage
from deploytools.progress import Progress
from deploytools.release import current_release
from deploytools.site import Site
from deploytools.site.lock import DeployLock
from deploytools.steps.base import RunContext
from deploytools.steps.common import verify_running
from deploytools.steps.deploy import release_record
from deploytools.ui import Ui


def context(site: Site, *, dry_run: bool) -> tuple[RunContext, DeployLock]:
    primary = site.primary
    values = site.values_for(primary.name)
    ctx = RunContext(site.settings, primary, site.ui, site.journal, values, site, dry_run=dry_run)
    previous = current_release(ctx.journal.releases())
    ctx.journal.warn_damaged(site.ui.warn)
    ctx.facts.previous_release = previous["tag"] if previous else None
    return ctx, site.lock()


def run(
    name: str, steps: Sequence[Stage], ctx: RunContext, lock: DeployLock
) -> PipelineResult | None:
    pipeline = Pipeline(name, steps, after_undo=_verify_previous)
    with _scratch(ctx):
        # An undo starts the release that runs now as it was: that its config can be read
        # from its commit is known before anything changes.
        if previous := ctx.facts.previous_release:
            ctx.for_release(previous)
        if ctx.dry_run:
            show_plan(ctx.ui, pipeline.plan(ctx))
            return None
    # From here a signal never cuts the journal short: the pipeline takes it where it can
    # stop (a step), and the failed release's record and the lock's release always happen.
    with INTERRUPTS.deferred():
        try:
            with Progress(ctx.ui) as progress:
                result = pipeline.run(ctx, progress)
            if not result.ok and ctx.release:
                left = result.abandoned
                abandoned = {"undo_abandoned": left} if left is not None else {}
                release_record(
                    ctx,
                    name,
                    "failed",
                    failed_step=result.failed_step,
                    error=result.error,
                    **abandoned,
                )
        finally:
            lock.release()
        if INTERRUPTS.pending:
            ctx.ui.warn(f"{INTERRUPTS.pending} after the {name} had ended: nothing more to stop")
    return result


@contextlib.contextmanager
def _scratch(ctx: RunContext) -> Iterator[None]:
    """What a dry run wrote to read releases' config is gone when its plan has been shown."""
    try:
        yield
    finally:
        for host, directory in ctx.scratch:
            host.remove(directory)


def _verify_previous(ctx: RunContext) -> str | None:
    """After an undo, the release that ran before must answer again (``Start`` learnt which
    one); when nothing ran before, there is nothing to verify."""
    previous = ctx.facts.previous_release
    return verify_running(ctx, previous) if previous else None


def show_plan(ui: Ui, plan: list[tuple[str, list[str]]]) -> None:
    if ui.json_mode:
        ui.emit_json({"plan": [{"step": name, "actions": lines} for name, lines in plan]})
        return
    ui.table(
        "plan (dry run: nothing is changed)",
        ["step", "would do"],
        [[name, "\n".join(lines)] for name, lines in plan],
    )
