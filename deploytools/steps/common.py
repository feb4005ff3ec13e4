"""Steps shared by deploy and rollback: env check, lock, start, health, Celery."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from deploytools.errors import DeployFailure
from deploytools.site.lock import DeployLock, Holder
from deploytools.steps.base import RunContext

ENGINE_POLL = 0.5  # seconds between two questions to an engine the undo waits for
P = ParamSpec("P")
R = TypeVar("R")


class ValidateEnv:
    """The env file, then the runtime (Docker daemon, compose files): before anything changes,
    not after a backup and a migration."""

    name = "validate env"

    def plan(self, ctx: RunContext) -> list[str]:
        s = ctx.settings
        what = (
            "Docker daemon reachable, compose v2, compose files valid"
            if s.runtime == "compose"
            else "service commands, app_dir"
        )
        return [
            f"check {s.env_file} against the env rules (built in, and {s.env_rules} if there)"
            f" and {s.env_example}",
            "find the migrations (alembic.ini's script_location, or database.alembic_dir) and"
            " what runs them (python, or database.migrate_service)",
            f"check the {s.runtime} runtime on {ctx.host.name}: {what}",
        ]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from deploytools.db.location import migrations_dir, release_ini
        from deploytools.env import validate as envvalidate

        report = envvalidate.validate_environment(ctx.settings, ctx.ui, ctx.control)
        if report.errors:
            envvalidate.show(ctx.ui, report)  # the table, then OperatorError
        migrations_dir(ctx.settings)  # a broken alembic.ini: refused before anything changes
        release_ini(ctx.settings)  # alembic runs with it, in the release
        ctx.runtime.check()
        ctx.runtime.check_migrations()  # its interpreter or service is there
        ctx.runtime.one_shots()  # a one-shot the runtime would restart: refused now, not later
        return {"env_keys": report.keys, "env_warnings": report.warnings}


class TakeLock:
    """Acquire the environment's deploy lock; the runner releases it whatever happens."""

    name = "lock"

    def __init__(self, lock: DeployLock, command: str, wait: float) -> None:
        self.lock = lock
        self.command = command
        self.wait = wait

    def plan(self, ctx: RunContext) -> list[str]:
        return [f"create {ctx.host.name}:{self.lock.path} (fails if held; waits {self.wait:.0f} s)"]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        self.lock.acquire(Holder.me(self.command, ctx.release or None), wait=self.wait)
        return {"lock": self.lock.path}


class Start:
    """Start the stack on ``release``; undo starts the release that ran before."""

    name = "start"

    def plan(self, ctx: RunContext) -> list[str]:
        services = ctx.services
        if services == []:
            return [f"nothing: no service has a role of {ctx.host.name}"]
        return ctx.runtime.plan_up(ctx.release, services or ())

    def run(self, ctx: RunContext) -> dict[str, Any]:
        services = ctx.services
        if services == []:
            return {"skipped": f"no service has a role of {ctx.host.name}"}
        replacing = self._running(ctx)
        if replacing:
            ctx.for_release(replacing)  # its config, read while nothing has stopped yet
        # A Celery worker that started before this is not of this release (VerifyCelery).
        ctx.facts.start_began = time.time()
        ctx.runtime.up(ctx.release, services or ())
        return {"services": services or ctx.runtime.services(), "replaced": replacing}

    @staticmethod
    def _running(ctx: RunContext) -> str | None:
        """What the undo must bring back: the release that runs now.

        The journal's word, unless the runtime (PID files, the containers' images) shows
        another: a journal that is missing, damaged or ends in an abandoned undo cannot say,
        and a site that serves must never be treated as empty.
        """
        recorded = ctx.facts.previous_release
        running = ctx.runtime.current_release()
        if running and running != recorded:
            ctx.ui.warn(
                f"the journal says {recorded or 'nothing'} runs, but the stack runs {running}:"
                f" an undo returns to {running}"
            )
            ctx.facts.previous_release = running
        return running or recorded

    def undo(self, ctx: RunContext) -> str:
        """The release before, as it was: its own compose files and config (services only
        the failed release has are removed: ``up --remove-orphans``), its recorded images."""
        from deploytools.artifacts import restore_images

        previous = ctx.facts.previous_release
        if not previous:
            ctx.runtime.down()
            return "stack stopped (no earlier release to return to)"
        waited = _wait_for_runtime(ctx, previous)
        back = ctx.for_release(previous)
        if back.settings is not ctx.settings:  # its own config, not today's
            ctx.ui.info(f"undo start: {back.made_with}")
        images = restore_images(back.settings, back.runtime, ctx.journal, previous, why="undo")
        if images["retagged"]:
            ctx.ui.info(f"undo start: re-tagged {', '.join(images['retagged'])} by recorded id")
        if images["built"]:
            ctx.ui.info(f"undo start: images of {previous} built again from its commit")
        back.runtime.up(previous, ctx.services or ())
        return f"release {previous} started again{waited}"


def _wait_for_runtime(ctx: RunContext, previous: str) -> str:
    """Before the undo starts ``previous``: an engine that went away during the start (dockerd
    stopped or restarted) gets ``timeouts.engine`` to answer again, asked every ENGINE_POLL s.

    Returns what was waited for, for the undo's summary; raises, saying that nothing was
    restored and how to restore it, when the engine does not come back in time.
    """
    limit = ctx.settings.timeouts.engine
    started = time.monotonic()
    gone = ctx.runtime.unreachable(limit)
    if gone is None:
        return ""
    ctx.ui.warn(f"{gone} does not answer: waiting up to {limit:g} s for it to restore {previous}")
    while (left := limit - (time.monotonic() - started)) > 0:
        ctx.pause(min(ENGINE_POLL, left))
        if ctx.runtime.unreachable(max(left, ENGINE_POLL)) is None:
            return f" once {gone} answered again ({time.monotonic() - started:.1f} s later)"
    failure = DeployFailure(
        f"nothing was restored: {gone} did not answer within {limit:g} s",
        f"when it is back run invoke stack.up --env {ctx.settings.name} --release {previous}",
    )
    ctx.ui.warn(str(failure))  # the summary table shows it too, but this is what to do next
    raise failure


def disk_said(check: Callable[P, R]) -> Callable[P, R]:
    """A check that fails because a service died of a full disk says so first: a Celery check
    only sees that no worker answers, a health wait that a service stopped. ``check`` takes
    the ``RunContext`` among its arguments."""

    @functools.wraps(check)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return check(*args, **kwargs)
        except DeployFailure as exc:
            ctx = next(a for a in args if isinstance(a, RunContext))
            try:
                full = ctx.runtime.out_of_space()
            except DeployFailure:  # the runtime cannot say: the check's own words stand
                full = None
            if full:
                exc.problem = f"{full}\n{exc.problem}"
                exc.args = (exc.problem,)
            raise

    return checked


class WaitHealthy:
    name = "wait healthy"

    def plan(self, ctx: RunContext) -> list[str]:
        from deploytools.probes.health import targets_for

        services = ctx.services
        if services == []:
            return [f"nothing: no service has a role of {ctx.host.name}"]
        targets = targets_for(
            ctx.settings, ctx.runtime, ctx.env_values, services or (), release=ctx.release
        )
        return [t.describe_plan() for t in targets]

    def prepare(self, ctx: RunContext) -> None:
        from deploytools.probes.health import load_modules

        load_modules()

    @disk_said
    def run(self, ctx: RunContext) -> dict[str, Any]:
        from deploytools.probes.health import wait_healthy

        services = ctx.services
        if services == []:
            return {"skipped": f"no service has a role of {ctx.host.name}"}
        healthy = wait_healthy(
            ctx.settings,
            ctx.runtime,
            ctx.ui,
            host=ctx.host,
            env_values=ctx.env_values,
            services=services or (),
            release=ctx.release,
            sleep=ctx.pause,
        )
        return {"healthy": [h.as_dict() for h in healthy]}


class VerifyCelery:
    name = "verify celery"

    def plan(self, ctx: RunContext) -> list[str]:
        conf = ctx.settings.celery
        if conf is None:
            return ["no celery section: skipped"]
        release = ctx.release or "<new release>"
        roundtrip = f", send {conf.roundtrip_task} to each" if conf.roundtrip_task else ""
        return [
            f"ping {conf.expected_workers} worker(s) within {conf.ping_timeout} s, "
            f"check tasks {', '.join(conf.required_tasks) or '(none listed)'}, "
            f"send {conf.canary_task} where registered and expect release {release}, "
            f"and workers without it started after the start{roundtrip}"
        ]

    def prepare(self, ctx: RunContext) -> None:
        if ctx.settings.celery is not None:
            from deploytools.probes.celery import load_modules

            load_modules(ctx.settings, ctx.env_values)

    @disk_said
    def run(self, ctx: RunContext) -> dict[str, Any]:
        if ctx.settings.celery is None:
            return {"skipped": "no celery section in the config"}
        from deploytools.probes.celery import verify_celery

        report = verify_celery(
            ctx.settings,
            ctx.env_values,
            ctx.release,
            ctx.ui,
            host=ctx.host,
            stopping=ctx.stopping,
            since=ctx.facts.start_began,
            previous=ctx.facts.previous_release,
        )
        return {"celery": report.as_dict()}


@disk_said
def verify_running(ctx: RunContext, release: str, *, celery: bool = True) -> str:
    """After an undo: the release we went back to must answer its own health checks again
    (its services, probes and Celery settings, not the failed release's) on ctx's host."""
    from deploytools.probes.celery import verify_celery
    from deploytools.probes.health import wait_healthy

    back = ctx.for_release(release)
    services = back.services
    if services == []:
        return f"no service of {ctx.host.name}'s roles to verify"
    wait_healthy(
        back.settings,
        back.runtime,
        ctx.ui,
        host=ctx.host,
        env_values=ctx.env_values,
        services=services or (),
        release=release,
    )
    if celery and back.settings.celery is not None:
        verify_celery(back.settings, ctx.env_values, release, ctx.ui, host=ctx.host)
    return f"release {release} verified healthy again"


def healthy_again(ctx: RunContext) -> str:
    """A host taken back by a rollout: the release before answers its probes there (its
    Celery workers are checked with every host's, once the rollout is undone)."""
    previous = ctx.facts.previous_release
    if not previous:
        return "nothing ran before: its services are stopped"
    return verify_running(ctx, previous, celery=False)
