"""Run steps in order, time them, journal them, and undo the completed ones on failure.

``deploy``, ``rollback`` and ``flags.stage`` are pipelines. Ctrl-C and SIGTERM are turned into
``Interrupted`` so that an interrupted run takes the same undo path as a failed one and the
journal says where it stopped.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from deploytools.errors import DeployFailure, DeployToolsError
from deploytools.progress import Progress
from deploytools.steps.base import RunContext, Step, can_undo


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a pipeline."""


@dataclass
class StepOutcome:
    name: str
    status: str  # done | failed | undone | undo-failed | interrupted | skipped
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
    duration: float = 0.0
    exit_code: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.name,
            "ok": self.ok,
            "failed_step": self.failed_step,
            "error": self.error,
            "undone": self.undone,
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


class Pipeline:
    def __init__(
        self,
        name: str,
        steps: Sequence[Step],
        *,
        after_undo: Callable[[RunContext], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.steps = list(steps)
        self.after_undo = after_undo
        self._clock = clock

    def plan(self, ctx: RunContext) -> list[tuple[str, list[str]]]:
        return [(step.name, step.plan(ctx)) for step in self.steps]

    def run(self, ctx: RunContext, progress: Progress) -> PipelineResult:
        started = self._clock()
        outcomes: list[StepOutcome] = []
        done: list[Step] = []
        ctx.journal.append(
            f"{self.name}.start", release=ctx.release, steps=[s.name for s in self.steps]
        )
        failure: BaseException | None = None
        failed_step: str | None = None
        with _signals_interrupt():
            for step in self.steps:
                progress.start(step.name)
                ctx.journal.append("step.start", pipeline=self.name, step=step.name)
                t0 = self._clock()
                try:
                    detail = step.run(ctx) or {}
                except (Exception, KeyboardInterrupt) as exc:
                    elapsed = self._clock() - t0
                    interrupted = isinstance(exc, KeyboardInterrupt)
                    status = "interrupted" if interrupted else "failed"
                    message = f"interrupted at {step.name}" if interrupted else _message(exc)
                    progress.finish(step.name, status, elapsed)
                    outcomes.append(StepOutcome(step.name, status, elapsed, error=message))
                    ctx.journal.append(
                        f"step.{status}",
                        pipeline=self.name,
                        step=step.name,
                        duration=round(elapsed, 3),
                        error=message,
                    )
                    failure, failed_step = exc, step.name
                    if can_undo(step):
                        done.append(step)  # a half-done step may have changed things too
                    break
                elapsed = self._clock() - t0
                progress.finish(step.name, "done", elapsed)
                outcomes.append(StepOutcome(step.name, "done", elapsed, detail))
                ctx.journal.append(
                    "step.done",
                    pipeline=self.name,
                    step=step.name,
                    duration=round(elapsed, 3),
                    **detail,
                )
                done.append(step)
            result = PipelineResult(self.name, failure is None, outcomes, failed_step)
            if failure is not None:
                result.error = outcomes[-1].error
                result.exit_code = _exit_code(failure)
                self._undo(ctx, done, result, progress)
        result.duration = self._clock() - started
        ctx.journal.append(
            f"{self.name}.{'done' if result.ok else 'failed'}",
            release=ctx.release,
            failed_step=failed_step,
            error=result.error,
            undone=result.undone,
            duration=round(result.duration, 3),
        )
        return result

    def _undo(
        self, ctx: RunContext, done: list[Step], result: PipelineResult, progress: Progress
    ) -> None:
        for step in reversed(done):
            if not can_undo(step):
                continue
            label = f"undo {step.name}"
            progress.start(label)
            t0 = self._clock()
            try:
                said = step.undo(ctx)  # type: ignore[attr-defined]
            except (Exception, KeyboardInterrupt) as exc:
                progress.finish(label, "failed", self._clock() - t0)
                ctx.journal.append("undo.failed", step=step.name, error=_message(exc))
                result.outcomes.append(StepOutcome(label, "undo-failed", error=_message(exc)))
                continue
            progress.finish(label, "done", self._clock() - t0)
            ctx.journal.append("undo.done", step=step.name, result=said)
            result.undone.append(f"{step.name}: {said}")
        if self.after_undo is not None and result.undone:
            try:
                result.undone.append(self.after_undo(ctx))
            except (Exception, KeyboardInterrupt) as exc:
                ctx.journal.append("undo.verify-failed", error=_message(exc))
                result.undone.append(f"the previous release did NOT verify: {_message(exc)}")


def _exit_code(exc: BaseException) -> int:
    """Bad input 2, the world said no 1, Ctrl-C or SIGTERM 130 (as a shell reports SIGINT)."""
    if isinstance(exc, DeployToolsError):
        return exc.exit_code
    return 130 if isinstance(exc, KeyboardInterrupt) else 1


def _message(exc: BaseException) -> str:
    if isinstance(exc, DeployToolsError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C for the duration of a pipeline (undo, unlock, journal)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: signals stay as they are
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def raise_if_failed(result: PipelineResult, logs_hint: str) -> None:
    if not result.ok:
        undone = "; ".join(result.undone) or "nothing needed undoing"
        failure = DeployFailure(
            f"{result.name} failed at step '{result.failed_step}': {result.error}\n"
            f"  undone: {undone}",
            f"see {logs_hint}",
        )
        failure.exit_code = result.exit_code
        raise failure
