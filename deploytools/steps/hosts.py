"""Per-host stages: steps that run on every host of the run, not once on the primary.

``OnHosts`` runs its steps on each host, in order, as a rollout policy
(``deploytools.pipeline.rollout``) goes over the hosts: shipping a release goes to every host
at once and must reach all of them (no failure tolerated); starting it rolls, in batches,
within the environment's failure budget.
A host's steps run in a thread of their own on a context of that host (``RunContext.on_host``):
its own runtime and facts, the run's journal, which says on which host each step ended.

When the budget is exceeded the rollout's policy decides: ``on_failure = "rollback"`` undoes the
steps done on every host the stage changed (then the pipeline undoes the site-wide steps before
it, the migration among them); ``"halt"`` leaves them and fails with ``RolloutHalted``, which
the pipeline does not undo: the hosts already switched run the new release on the new schema.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from deploytools.errors import DeployFailure, DeployToolsError, Interrupted, RolloutHalted
from deploytools.steps.base import RunContext, Step, can_undo

if TYPE_CHECKING:
    from deploytools.pipeline.rollout import HostOutcome, RolloutPolicy

NO_OTHER_HOST = "no host but the primary: nothing to do"
HOSTS_FIX = "see the per-host table above, `invoke history --env {env}` and the hosts' logs"


class CheckHost:
    """``hosts.check`` on one host of the run: a deploy changes nothing anywhere when a host
    cannot take it (unreachable, unknown key, no engine or interpreter, full, skewed clock,
    read-only root)."""

    name = "check host"

    def plan(self, ctx: RunContext) -> list[str]:
        from deploytools.hostcheck import check_names

        return [f"check {', '.join(check_names(ctx.settings))}"]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from deploytools.hostcheck import check_host

        conf = next(h for h in ctx.settings.hosts if h.name == ctx.host.name)
        checks = check_host(ctx.settings, conf, ctx.host)
        if not checks.ok:
            said = "; ".join(f"{c.name}: {c.detail}" for c in checks.failed())
            raise DeployFailure(
                f"host {ctx.host.name} cannot take the release: {said}",
                f"see `invoke hosts.check --env {ctx.settings.name}`; nothing was changed",
            )
        return {"checks": checks.as_dict()["checks"]}


class Retire:
    """Stop what a host runs that its roles no longer give it (a service moved to other hosts):
    only once the roll out has ended, so that what replaces it elsewhere runs first. The undo
    starts it again on the release it ran."""

    name = "retire"

    def plan(self, ctx: RunContext) -> list[str]:
        return [f"stop on {ctx.host.name} any service its roles no longer give it"]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        mine = ctx.services
        if mine is None:  # every service runs here
            return {"stopped": []}
        known = set(ctx.runtime.services())
        strays = {
            name: status.release
            for name, status in ctx.runtime.status().items()
            if name in known and name not in mine and status.state == "running"
        }
        ctx.facts.retired = strays
        if strays:
            ctx.runtime.stop(sorted(strays))
        return {"stopped": sorted(strays)}

    def undo(self, ctx: RunContext) -> str:
        strays = ctx.facts.retired
        for release in sorted(set(strays.values())):
            names = sorted(n for n, r in strays.items() if r == release)
            back = ctx.for_release(release) if release else ctx
            back.runtime.up(release or ctx.release, names)
        return f"started again: {', '.join(sorted(strays))}" if strays else "nothing was stopped"


class OnHosts:
    def __init__(
        self,
        name: str,
        steps: Sequence[Step],
        *,
        rolling: bool,
        with_primary: bool = False,
        others: bool = False,
        verify_back: Callable[[RunContext], object] | None = None,
    ) -> None:
        self.name = name
        self.steps = tuple(steps)
        self.rolling = rolling  # False: every host at once, any failure fails the stage
        # The primary too, whatever --hosts says: the site-wide stages after this one (the
        # lint, the migration) run in the release on the primary.
        self.with_primary = with_primary
        # The target hosts but the primary: they get what the primary made (its images).
        self.others = others
        # After a host is taken back: what proves the release before runs there again.
        self.verify_back = verify_back
        if any(map(can_undo, self.steps)):  # else the pipeline has nothing to undo here
            self.undo = self._undo
        self._done: dict[str, list[Step]] = {}
        self._lock = threading.Lock()

    def hosts(self, ctx: RunContext) -> list[str]:
        names = ctx.host_names
        primary = ctx.site.host_names[0]
        if self.others:
            return [n for n in names if n != primary]
        return [primary, *(n for n in names if n != primary)] if self.with_primary else names

    def plan(self, ctx: RunContext) -> list[str]:
        names = self.hosts(ctx)
        if not names:
            return [NO_OTHER_HOST]
        policy = self._policy(ctx, len(names))
        from deploytools.pipeline.rollout import describe, plan_batches

        batches = plan_batches(names, policy)
        lines = [describe(policy, batches) if self.rolling else f"on {', '.join(names)} at once"]
        for name in names:
            on = ctx.on_host(name)
            lines += [f"{name}: {line}" for step in self.steps for line in step.plan(on)]
        return lines

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from deploytools.pipeline.rollout import run_rollout

        names = self.hosts(ctx)
        if not names:
            return {"hosts": NO_OTHER_HOST}
        policy = self._policy(ctx, len(names))
        result = run_rollout(
            names,
            lambda name: self._on(ctx, name),
            policy,
            revert=lambda name: self._revert(ctx, name),
            stopping=ctx.stopping,
        )
        if self.rolling or not result.ok:  # what each host reached; a stage at once: if any failed
            ctx.ui.table(
                f"{self.name}: per host", ["host", "batch", "state", "seconds", "error"],
                result.as_rows(), ids={"host"},
            )  # fmt: skip
        detail = {"hosts": result.as_dict()}
        if result.ok:
            if result.failed:  # tolerated: the deploy goes on, and says who is left behind
                ctx.ui.warn(f"{self.name}: {result.summary()}")
            return detail
        fix = HOSTS_FIX.format(env=ctx.settings.name)
        if result.interrupted:
            raise Interrupted(f"interrupted at {self.name}: {result.summary()}")
        if policy.on_failure == "halt" and self.rolling:
            raise RolloutHalted(f"{self.name} halted: {result.summary()}", fix)
        if not self.rolling:  # nothing rolled: each failed host's own error and fix say it
            raise _failed_on(self.name, result.outcomes, fix)
        raise DeployFailure(f"{self.name} failed: {result.summary()}", fix)

    def _undo(self, ctx: RunContext) -> str:
        """Take back every host this stage changed and has not taken back yet."""
        from deploytools.pipeline.rollout import RolloutPolicy, run_rollout

        with self._lock:
            left = [name for name, done in self._done.items() if any(map(can_undo, done))]
        if not left:
            return "no host to take back"
        # Every host is taken back, whichever fails: the budget is all of them.
        policy = RolloutPolicy(
            max_parallel=ctx.settings.rollout.max_parallel, max_fail=len(left), on_failure="halt"
        )
        result = run_rollout(left, lambda name: self._revert(ctx, name), policy)
        broken = [o.name for o in result.outcomes if o.ran != "ok"]
        if broken:
            errors = "; ".join(f"{o.name}: {o.error}" for o in result.outcomes if o.error)
            raise DeployFailure(
                f"undo {self.name} failed on {', '.join(broken)}: {errors}",
                HOSTS_FIX.format(env=ctx.settings.name),
            )
        return f"taken back on {', '.join(left)}"

    def _policy(self, ctx: RunContext, hosts: int) -> RolloutPolicy:
        """The environment's rollout policy; every host at once and no failure tolerated for
        a stage that does not roll (shipping: what runs does not change)."""
        from deploytools.pipeline.rollout import RolloutPolicy

        if self.rolling:
            return ctx.settings.rollout.policy(hosts)
        return RolloutPolicy(max_parallel=ctx.settings.rollout.max_parallel)

    def _on(self, ctx: RunContext, name: str) -> None:
        """This stage's steps on host ``name``, in order; what they did is kept for undo."""
        on = ctx.on_host(name)
        with self._lock:
            done = self._done.setdefault(name, [])
        for step in self.steps:
            _journal(ctx, "host.step.start", name, step=step.name, release=ctx.release)
            started = time.monotonic()
            try:
                detail = step.run(on) or {}
            except BaseException as exc:
                if can_undo(step):  # a half-done step may have changed things too
                    done.append(step)
                _journal(
                    ctx, "host.step.failed", name, step=step.name, release=ctx.release,
                    duration=_since(started), error=str(exc),
                )  # fmt: skip
                raise
            done.append(step)
            took = _since(started)
            said = {**detail, "step": step.name, "release": ctx.release, "duration": took}
            _journal(ctx, "host.step.done", name, **said)
            ctx.ui.info(f"  {name}: {step.name} done")

    def _revert(self, ctx: RunContext, name: str) -> None:
        """Undo, in reverse, the steps done on ``name``; safe on a host never changed."""
        on = ctx.on_host(name)
        with self._lock:
            done, self._done[name] = list(self._done.get(name, [])), []
        undone = False
        for step in reversed(done):
            if can_undo(step):
                said = step.undo(on)  # type: ignore[attr-defined]
                undone = True
                _journal(ctx, "host.step.undone", name, step=step.name, said=said)
                ctx.ui.info(f"  {name}: undo {step.name}: {said}")
        if undone and self.verify_back is not None:
            back = self.verify_back(on)
            _journal(ctx, "host.verified", name, said=str(back))
            ctx.ui.info(f"  {name}: {back}")


def _journal(ctx: RunContext, kind: str, name: str, **fields: Any) -> None:
    """A line of host ``name`` in the site's journal and, the same line, in the host's own."""
    record = ctx.journal.append(kind, host=name, **fields)
    ctx.site.journal_on(name, record)


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def _failed_on(stage: str, outcomes: Sequence[HostOutcome[str, Any]], fix: str) -> DeployFailure:
    """The failure of a stage run on every host at once: which hosts failed and why, with
    their errors' own fixes (a host key to record, a disk to free) before the general one."""
    failed = [o for o in outcomes if o.ran == "failed"]
    said = "; ".join(
        o.failure.problem if isinstance(o.failure, DeployToolsError) else o.error for o in failed
    )
    fixes = [o.failure.fix for o in failed if isinstance(o.failure, DeployToolsError)]
    own = list(dict.fromkeys(f for f in fixes if f))
    return DeployFailure(
        f"{stage} failed on {', '.join(o.name for o in failed)}: {said}", "; ".join([*own, fix])
    )
