"""Run steps in order, time them, journal them, and undo the completed ones on failure.

``deploy``, ``rollback`` and ``flags.stage`` are pipelines. Ctrl-C, SIGTERM and SIGHUP become
``Interrupted`` (``deploytools.interrupts``) so that an interrupted run takes the same undo path
as a failed one and the journal says where it stopped. A signal interrupts a step's work at
once; one that comes while the pipeline journals, or between two steps, is taken at the next
step. The undo is shielded: one more signal is answered, the one after abandons it, and what
was left undone is said and journaled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

from deploytools.errors import DeployFailure, DeployToolsError, Interrupted, RolloutHalted, one_line
from deploytools.interrupts import INTERRUPTS, Abandoned
from deploytools.progress import Progress
from deploytools.steps.base import RunContext, Step, can_undo

# A member that failed this long before the signal reached us failed of the same Ctrl-C (a
# terminal sends it to the member's command too); one that failed earlier, of its own.
SAME_SIGNAL = 1.0
# A stage's prepare() only imports (well under a second); past this the next stage goes on
# beside it rather than wait on something stuck.
PREPARE_LIMIT = 10.0


@dataclass
class StepOutcome:
    name: str
    status: str  # done | failed | undone | undo-failed | interrupted | skipped (detail: why)
    duration: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class PipelineResult:
    name: str
    ok: bool
    outcomes: list[StepOutcome]
    failed_step: str | None = None
    error: str = ""
    undone: list[str] = field(default_factory=list)
    # Signalled again during the undo: the undo steps it left ([] if only the check was left).
    abandoned: list[str] | None = None
    duration: float = 0.0
    exit_code: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.name,
            "ok": self.ok,
            "failed_step": self.failed_step,
            "error": self.error,
            "undone": self.undone,
            **({"undo_abandoned": self.abandoned} if self.abandoned is not None else {}),
            "duration": round(self.duration, 3),
            "steps": [
                {
                    "name": o.name,
                    "status": o.status,
                    "duration": round(o.duration, 3),
                    **({"error": o.error} if o.error else {}),
                    **o.detail,
                }
                for o in self.outcomes
            ],
        }


@dataclass(frozen=True)
class Together:
    """Steps that run at the same time, each in a thread of its own; the next stage waits
    for all of them.

    For checks that wait on different things: the group takes as long as the slowest member,
    not the sum. A failure is reported once every member has ended (each is bounded by its
    own timeouts), and the members that finished are undone like any done step. On Ctrl-C or
    SIGTERM the members are told to stop (``RunContext.pause`` raises in their polling
    loops) and waited for. A long command does not belong here: SIGTERM reaches only this
    process, so a command in a member's thread would run on to its end.
    """

    steps: tuple[Step, ...]


Stage = Step | Together


def members(stage: Stage) -> tuple[Step, ...]:
    return stage.steps if isinstance(stage, Together) else (stage,)


@dataclass
class _Ended:
    """How one step ended: its outcome, the exception that failed it (if any), and when."""

    step: Step
    outcome: StepOutcome
    error: BaseException | None = None
    at: float = 0.0
    began: bool = True  # False: interrupted before its run began (nothing to undo)


class Pipeline:
    def __init__(
        self,
        name: str,
        stages: Sequence[Stage],
        *,
        after_undo: Callable[[RunContext], str | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.stages = list(stages)
        self.steps = [step for stage in self.stages for step in members(stage)]
        self.after_undo = after_undo
        self._clock = clock

    def plan(self, ctx: RunContext) -> list[tuple[str, list[str]]]:
        return [(step.name, step.plan(ctx)) for step in self.steps]

    def run(self, ctx: RunContext, progress: Progress) -> PipelineResult:
        started = self._clock()
        outcomes: list[StepOutcome] = []
        done: list[Step] = []
        failed: _Ended | None = None  # the first step that failed (in the pipeline's order)
        with INTERRUPTS.installed() as guard, guard.deferred():
            guard.warn = ctx.ui.warn
            ctx.journal.append(
                f"{self.name}.start", release=ctx.release, steps=[s.name for s in self.steps]
            )
            for index, stage in enumerate(self.stages):
                steps = members(stage)
                if len(steps) == 1:
                    following = self.stages[index + 1 : index + 2]
                    prepared = _prepare(ctx, [s for n in following for s in members(n)])
                    ended = [self._run_step(ctx, progress, steps[0], prepared)]
                else:
                    ended = self._run_together(ctx, progress, steps)
                for end in ended:
                    outcomes.append(end.outcome)
                    # A half-done step may have changed things too: it is undone as well.
                    if end.error is None or (end.began and can_undo(end.step)):
                        done.append(end.step)
                    if end.error is not None and failed is None:
                        failed = end
                if failed is not None:
                    break
            result = PipelineResult(self.name, failed is None, outcomes)
            if failed is not None and failed.error is not None:
                result.failed_step = failed.step.name
                result.error = failed.outcome.error
                result.exit_code = _exit_code(failed.error)
                if isinstance(failed.error, RolloutHalted):
                    # Hosts run the new release on the new schema: undoing the steps before
                    # (the migration) would pull it from under them. Said, not done.
                    ctx.ui.warn(f"on_failure = halt: nothing undone ({failed.outcome.error})")
                else:
                    self._undo(ctx, done, result, progress)
            elif guard.pending:  # after the last step: everything is done and recorded
                ctx.ui.warn(f"{guard.pending} after the last step: the {self.name} had finished")
                guard.pending = None
            result.duration = self._clock() - started
            ctx.journal.append(
                f"{self.name}.{'done' if result.ok else 'failed'}",
                release=ctx.release,
                failed_step=result.failed_step,
                error=result.error,
                undone=result.undone,
                **({"undo_abandoned": result.abandoned} if result.abandoned is not None else {}),
                duration=round(result.duration, 3),
            )
        return result

    def _run_step(
        self, ctx: RunContext, progress: Progress, step: Step, prepared: threading.Event
    ) -> _Ended:
        """Run ``step``; it ends once the next stage's ``prepare`` (beside it) has ended too.

        A Ctrl-C or SIGTERM during that wait interrupts this step like one during its run.
        A step that failed does not wait: its undo may import what it needs meanwhile. A
        ``final`` step (the record) runs to its end whatever comes: a signal then finds the
        run done, not half-recorded and undone.
        """
        t0, began = self._clock(), False
        try:
            self._begin(ctx, progress, step)
            with INTERRUPTS.raising():  # a signal recorded while it journalled: this step's
                began = True
                with INTERRUPTS.deferred() if getattr(step, "final", False) else nullcontext():
                    detail = step.run(ctx) or {}
                _wait([prepared], limit=PREPARE_LIMIT)
        except (Exception, KeyboardInterrupt) as exc:
            return replace(self._end(ctx, progress, step, t0, exc), began=began)
        return self._end(ctx, progress, step, t0, detail)

    def _run_together(
        self, ctx: RunContext, progress: Progress, steps: Sequence[Step]
    ) -> list[_Ended]:
        """Run ``steps`` in threads; this thread takes Ctrl-C/SIGTERM and tells them to stop."""
        lock = threading.Lock()  # one member at a time shows and journals how it ended
        began: set[int] = set()
        ended: dict[int, _Ended] = {}
        t0 = self._clock()
        try:
            for step in steps:
                self._begin(ctx, progress, step)
        except Exception as exc:  # the journal is out of reach: no member runs
            return [replace(self._end(ctx, progress, s, t0, exc), began=False) for s in steps]

        finished = [threading.Event() for _ in steps]  # not Thread.join: see _wait

        def work(index: int) -> None:
            step = steps[index]
            try:
                with lock:
                    if index in ended:  # interrupted before it began: it never runs
                        return
                    began.add(index)
                try:
                    got: dict[str, Any] | BaseException = step.run(ctx) or {}
                except (Exception, KeyboardInterrupt) as exc:
                    got = exc
                if isinstance(got, BaseException) and ctx.stopping.is_set():
                    got = Interrupted(f"interrupted at {step.name}")  # failed because told to
                with lock:
                    ended[index] = self._end(ctx, progress, step, t0, got)
            finally:
                finished[index].set()

        try:
            with INTERRUPTS.raising():  # a signal recorded before: no member begins
                for i, step in enumerate(steps):
                    name = f"step {step.name}"
                    threading.Thread(target=work, args=(i,), name=name, daemon=True).start()
                _wait(finished)
        except KeyboardInterrupt as exc:
            signalled = self._clock()
            ctx.stopping.set()
            with lock:
                for i in range(len(steps)):
                    if i not in began:  # the signal came first
                        gone = self._end(ctx, progress, steps[i], t0, exc)
                        ended[i] = replace(gone, began=False)
                        finished[i].set()
            _wait(finished)  # each member is bounded by its own timeouts
            for end in ended.values():
                if (
                    end.error is not None
                    and not isinstance(end.error, KeyboardInterrupt)
                    and end.at >= signalled - SAME_SIGNAL
                ):
                    # Failed from the same Ctrl-C, which a terminal sends to its commands too
                    # (the journal keeps the command's own words): the run was interrupted.
                    end.error = exc
                    end.outcome.status = "interrupted"
                    end.outcome.error = f"interrupted at {end.step.name}"
            if all(end.error is None for end in ended.values()):
                INTERRUPTS.defer(exc)  # every member ended well all the same: the next step's
        if all(event.is_set() for event in finished):
            ctx.stopping.clear()  # the undo and its checks come next
        return [ended[i] for i in range(len(steps))]

    def _begin(self, ctx: RunContext, progress: Progress, step: Step) -> None:
        progress.start(step.name)
        ctx.journal.append("step.start", pipeline=self.name, step=step.name)

    def _end(
        self,
        ctx: RunContext,
        progress: Progress,
        step: Step,
        t0: float,
        got: dict[str, Any] | BaseException,
    ) -> _Ended:
        """Show, journal and return how ``step`` ended: ``got`` is its detail or its error.

        If showing or journalling fails (the journal's host is gone), the step still ends,
        failed, with the error it had (or that one): never without an outcome.
        """
        elapsed = self._clock() - t0
        error = got if isinstance(got, BaseException) else None
        detail = got if isinstance(got, dict) else {}
        if error is None:
            # A step that had nothing to do says so (``{"skipped": why}``): never "done".
            status, message = ("skipped" if detail.get("skipped") else "done"), ""
        elif isinstance(error, KeyboardInterrupt):
            status, message = "interrupted", f"interrupted at {step.name}"
        else:
            status, message = "failed", one_line(error)
        try:
            progress.finish(step.name, status, elapsed, str(detail.get("skipped") or ""))
            fields = detail if error is None else {"error": message}
            ctx.journal.append(
                f"step.{status}",
                pipeline=self.name,
                step=step.name,
                duration=round(elapsed, 3),
                **fields,
            )
        except Exception as exc:
            error = error or exc
            status, message = "failed", one_line(error)
        outcome = StepOutcome(step.name, status, elapsed, detail if error is None else {}, message)
        return _Ended(step, outcome, error, self._clock())

    def _undo(
        self, ctx: RunContext, done: list[Step], result: PipelineResult, progress: Progress
    ) -> None:
        """Undo ``done`` in reverse, then verify what runs now; shielded from one signal.

        Signalled once more, it stops where it is: the steps left are named in the result and
        the journal (``undo.abandoned``), so that nobody believes the old release is back.
        """
        left = [step for step in reversed(done) if can_undo(step)]
        try:
            with INTERRUPTS.shielded():
                while left:
                    self._undo_step(ctx, left[0], result, progress)
                    left.pop(0)
                if self.after_undo is not None and result.undone:
                    try:
                        if said := self.after_undo(ctx):
                            result.undone.append(said)
                    except Abandoned:
                        raise
                    except (Exception, KeyboardInterrupt) as exc:
                        ctx.journal.append("undo.verify-failed", error=one_line(exc))
                        result.undone.append(
                            f"the previous release did NOT verify: {one_line(exc)}"
                        )
        except Abandoned as exc:
            result.abandoned = [step.name for step in left]
            names = ", ".join(result.abandoned) or "none (only the check of what runs now)"
            ctx.journal.append("undo.abandoned", signal=str(exc), left=result.abandoned)
            result.undone.append(
                f"undo ABANDONED ({exc}): not undone: {names}; what runs now is unknown"
                " (check `invoke stack.status`)"
            )

    def _undo_step(
        self, ctx: RunContext, step: Step, result: PipelineResult, progress: Progress
    ) -> None:
        label = f"undo {step.name}"
        progress.start(label)
        t0 = self._clock()
        try:
            said = step.undo(ctx)  # type: ignore[attr-defined]
        except Abandoned:
            progress.finish(label, "interrupted", self._clock() - t0)
            raise
        except (Exception, KeyboardInterrupt) as exc:
            progress.finish(label, "failed", self._clock() - t0)
            ctx.journal.append("undo.failed", step=step.name, error=one_line(exc))
            result.outcomes.append(StepOutcome(label, "undo-failed", error=one_line(exc)))
            return
        progress.finish(label, "done", self._clock() - t0)
        ctx.journal.append("undo.done", step=step.name, result=said)
        result.undone.append(f"{step.name}: {said}")


def _prepare(ctx: RunContext, steps: Sequence[Step]) -> threading.Event:
    """Call the ``prepare`` of ``steps`` in a thread; the event is set once they have ended.

    Only imports run there (``Preparable``), beside a step that mostly waits on a command and
    imports little of its own (never the same modules); the next stage starts after them.
    """
    ended = threading.Event()
    hooks = [hook for step in steps if callable(hook := getattr(step, "prepare", None))]

    def work() -> None:
        try:
            for hook in hooks:
                try:
                    hook(ctx)
                except Exception:  # ``run`` meets it again and says it properly
                    pass
        finally:
            ended.set()

    if hooks:
        threading.Thread(target=work, name="prepare", daemon=True).start()
    else:
        ended.set()
    return ended


def _wait(events: Sequence[threading.Event], *, limit: float | None = None) -> None:
    """Wait until every event is set, or ``limit`` seconds have passed.

    Events, not ``Thread.join``: a join that Ctrl-C interrupts can leave its thread marked as
    stopped while it still runs (CPython 3.11), and short waits let Ctrl-C in on Windows too.
    """
    deadline = None if limit is None else time.monotonic() + limit
    for event in events:
        while not event.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return
            event.wait(0.2)


def _exit_code(exc: BaseException) -> int:
    """Bad input 2, the world said no 1, Ctrl-C or SIGTERM 130 (as a shell reports SIGINT)."""
    if isinstance(exc, DeployToolsError):
        return exc.exit_code
    return 130 if isinstance(exc, KeyboardInterrupt) else 1




def raise_if_failed(result: PipelineResult, logs_hint: str) -> None:
    """The run's failure as one message: what failed, what was undone, and what could not be
    (an undo step that failed leaves something as the failed run left it: said, not hidden)."""
    if not result.ok:
        undone = "; ".join(result.undone) or "nothing needed undoing"
        broken = [f"{o.name}: {o.error}" for o in result.outcomes if o.status == "undo-failed"]
        not_undone = "".join(f"\n  NOT undone: {line}" for line in broken)
        failure = DeployFailure(
            f"{result.name} failed at step '{result.failed_step}': {result.error}\n"
            f"  undone: {undone}{not_undone}",
            f"see {logs_hint}",
        )
        failure.exit_code = result.exit_code
        raise failure
