import io
import os
import signal
import threading
import time
from typing import Any

import pytest

from deploytools.config import EnvironmentSettings
from deploytools.pipeline import engine as pipeline
from deploytools.pipeline.engine import Interrupted, Pipeline, Together
from deploytools.progress import Progress
from deploytools.steps.base import RunContext
from deploytools.testing import MemoryHost, run_context
from deploytools.ui import Ui


class Recorder:
    def __init__(
        self, name: str, log: list[str], fail: BaseException | None = None, undo: bool = True
    ):
        self.name = name
        self.log = log
        self.fail = fail
        if not undo:
            self.undo = None  # type: ignore[assignment]

    def plan(self, ctx: RunContext) -> list[str]:
        return [f"would {self.name}"]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        self.log.append(f"run {self.name}")
        if self.fail is not None:
            raise self.fail
        return {"result": self.name}

    def undo(self, ctx: RunContext) -> str:
        self.log.append(f"undo {self.name}")
        return f"{self.name} taken back"


def context() -> tuple[RunContext, MemoryHost, io.StringIO]:
    host = MemoryHost()
    err = io.StringIO()
    ui = Ui(stderr=err, stdout=io.StringIO())
    settings = EnvironmentSettings(name="t", env_file="x", env_example="y", runtime="process")
    return run_context(settings, host, ui, release="r1"), host, err


def test_steps_run_in_order_and_are_journaled_with_durations() -> None:
    ctx, _, err = context()
    log: list[str] = []
    result = Pipeline("deploy", [Recorder("a", log), Recorder("b", log)]).run(ctx, Progress(ctx.ui))
    assert result.ok and log == ["run a", "run b"]
    kinds = [r["kind"] for r in ctx.journal.records()]
    assert kinds == [
        "deploy.start",
        "step.start",
        "step.done",
        "step.start",
        "step.done",
        "deploy.done",
    ]
    assert ctx.journal.records()[2]["result"] == "a"
    assert "✓ b done" in err.getvalue()


class Skipping(Recorder):
    def run(self, ctx: RunContext) -> dict[str, Any]:
        return {"skipped": "nothing to back up yet"}


def test_a_step_with_nothing_to_do_is_skipped_with_why_not_done() -> None:
    ctx, _, err = context()
    result = Pipeline("deploy", [Skipping("backup", [])]).run(ctx, Progress(ctx.ui))
    assert result.ok and [o.status for o in result.outcomes] == ["skipped"]
    ended = ctx.journal.records()[2]
    assert (ended["kind"], ended["skipped"]) == ("step.skipped", "nothing to back up yet")
    assert "- backup skipped (nothing to back up yet)" in err.getvalue()
    assert result.as_dict()["steps"][0]["status"] == "skipped"


def test_the_live_list_on_a_terminal_says_skipped_and_why() -> None:
    from rich.console import Console

    screen = io.StringIO()
    ui = Ui(err=Console(file=screen, width=80, force_terminal=True, color_system=None))
    progress = Progress(ui, clock=lambda: 5.0)
    progress.start("lock")
    progress.finish("lock", "done", 0.2)
    progress.start("backup")
    progress.finish("backup", "skipped", 0.0, "no database yet")
    said = len(screen.getvalue())  # without a Live view, the plain lines came first
    ui.err.print(progress._render())
    lock, backup = screen.getvalue()[said:].splitlines()
    assert lock.split() == ["✓", "lock", "0.2s"]  # done: the mark says it
    assert backup.split() == ["-", "backup", "skipped", "(no", "database", "yet)", "0.0s"]


class Preparing(Recorder):
    """Has a ``prepare``: it records the thread it ran in, sets ``ready``, may fail."""

    def __init__(self, name: str, log: list[str], ready: threading.Event, fails: bool = False):
        super().__init__(name, log)
        self.ready = ready
        self.fails = fails

    def prepare(self, ctx: RunContext) -> None:
        self.log.append(f"prepare {self.name} in {threading.current_thread().name}")
        self.ready.set()
        if self.fails:
            raise ImportError("No module named 'driver'")


class WaitsFor(Recorder):
    """Runs only once ``ready`` is set: proof that something ran beside it."""

    def __init__(self, name: str, log: list[str], ready: threading.Event):
        super().__init__(name, log)
        self.ready = ready

    def run(self, ctx: RunContext) -> dict[str, Any]:
        assert self.ready.wait(5), "the next stage was not prepared while this step ran"
        return super().run(ctx)


def test_the_next_stage_prepares_beside_the_step_before_and_its_failure_is_ignored() -> None:
    ctx, _, _ = context()
    log: list[str] = []
    last = threading.Event()  # set by the last prepare
    stages = [
        WaitsFor("build", log, last),
        Together(
            (Preparing("check", log, threading.Event()), Preparing("verify", log, last, fails=True))
        ),
    ]
    result = Pipeline("deploy", stages).run(ctx, Progress(ctx.ui))
    assert result.ok, result.error
    assert log[:3] == ["prepare check in prepare", "prepare verify in prepare", "run build"]
    assert sorted(log[3:]) == ["run check", "run verify"]  # a failed prepare is no failure


def test_a_signal_while_the_next_stage_prepares_interrupts_the_step_and_undoes_it() -> None:
    ctx, _, _ = context()
    log: list[str] = []
    built, release = threading.Event(), threading.Event()

    class Build(Recorder):
        def run(self, ctx: RunContext) -> dict[str, Any]:
            done = super().run(ctx)
            built.set()
            return done

    class SlowPrepare(Recorder):  # its imports outlast the build; a SIGTERM comes meanwhile
        def prepare(self, ctx: RunContext) -> None:
            assert built.wait(5)
            os.kill(os.getpid(), signal.SIGTERM)  # the pipeline's handler: this is not main
            release.wait(5)

    steps = [Build("build", log), SlowPrepare("migrate", log)]
    result = Pipeline("deploy", steps).run(ctx, Progress(ctx.ui))
    release.set()
    assert result.error == "interrupted at build" and result.exit_code == 130
    assert log == ["run build", "undo build"]  # migrate never ran


def test_a_stuck_prepare_is_waited_for_only_up_to_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pipeline, "PREPARE_LIMIT", 0.3)
    ctx, _, _ = context()
    log: list[str] = []
    release, gave_up = threading.Event(), threading.Event()

    class Stuck(Recorder):
        def prepare(self, ctx: RunContext) -> None:
            release.wait(5)
            gave_up.set()

        def run(self, ctx: RunContext) -> dict[str, Any]:
            assert not gave_up.is_set(), "the pipeline waited for the stuck prepare"
            return super().run(ctx)

    try:
        result = Pipeline("deploy", [Recorder("build", log), Stuck("migrate", log)]).run(
            ctx, Progress(ctx.ui)
        )
    finally:
        release.set()
    assert result.ok and log == ["run build", "run migrate"]


def test_a_failure_undoes_completed_steps_in_reverse_and_skips_the_rest() -> None:
    ctx, _, _ = context()
    log: list[str] = []
    steps = [
        Recorder("a", log),
        Recorder("n", log, undo=False),
        Recorder("b", log),
        Recorder("c", log, fail=RuntimeError("boom")),
        Recorder("d", log),
    ]
    result = Pipeline("deploy", steps).run(ctx, Progress(ctx.ui))
    assert not result.ok and result.failed_step == "c"
    assert log == ["run a", "run n", "run b", "run c", "undo c", "undo b", "undo a"]
    assert "RuntimeError: boom" in result.error
    assert result.undone == ["c: c taken back", "b: b taken back", "a: a taken back"]
    assert ctx.journal.records()[-1]["kind"] == "deploy.failed"


def test_an_interrupt_is_journaled_with_its_step_and_undone() -> None:
    ctx, _, _ = context()
    log: list[str] = []
    steps = [Recorder("a", log), Recorder("migrate", log, fail=Interrupted("signal 15"))]
    result = Pipeline("deploy", steps).run(ctx, Progress(ctx.ui))
    assert result.error == "interrupted at migrate"
    assert result.exit_code == 130
    assert "step.interrupted" in [r["kind"] for r in ctx.journal.records()]
    assert log[-2:] == ["undo migrate", "undo a"]


def test_a_failing_undo_is_reported_and_the_others_still_run() -> None:
    ctx, _, _ = context()
    log: list[str] = []

    class BadUndo(Recorder):
        def undo(self, ctx: RunContext) -> str:
            raise RuntimeError("cannot")

    steps = [
        Recorder("a", log),
        BadUndo("b", log),
        Recorder("c", log, fail=ValueError("x"), undo=False),
    ]
    result = Pipeline("deploy", steps).run(ctx, Progress(ctx.ui))
    assert result.undone == ["a: a taken back"]
    assert [o.status for o in result.outcomes][-1] == "undo-failed"
    assert "undo.failed" in [r["kind"] for r in ctx.journal.records()]


@pytest.mark.parametrize("verified", [True, False])
def test_after_undo_verifies_the_previous_release(verified: bool) -> None:
    ctx, _, _ = context()
    log: list[str] = []

    def after(_: RunContext) -> str:
        if not verified:
            raise RuntimeError("unhealthy")
        return "previous release healthy"

    steps = [Recorder("a", log), Recorder("b", log, fail=RuntimeError("x"), undo=False)]
    result = Pipeline("deploy", steps, after_undo=after).run(ctx, Progress(ctx.ui))
    assert ("previous release healthy" in result.undone) is verified
    assert any("did NOT verify" in u for u in result.undone) is not verified


class Meeting(Recorder):
    """Runs only while another member runs too: alone it breaks the barrier (times out)."""

    def __init__(self, name: str, log: list[str], barrier: threading.Barrier, **kw: Any):
        super().__init__(name, log, **kw)
        self.barrier = barrier

    def run(self, ctx: RunContext) -> dict[str, Any]:
        self.barrier.wait()
        return super().run(ctx)


def test_together_runs_its_members_at_the_same_time_and_the_next_step_after_all() -> None:
    ctx, _, _ = context()
    log: list[str] = []
    barrier = threading.Barrier(2, timeout=5)
    group = Together((Meeting("web", log, barrier), Meeting("celery", log, barrier)))
    pipeline = Pipeline("deploy", [Recorder("a", log), group, Recorder("z", log)])
    result = pipeline.run(ctx, Progress(ctx.ui))
    assert result.ok, result.error
    assert log[0] == "run a" and log[-1] == "run z"
    assert sorted(log[1:3]) == ["run celery", "run web"]
    assert [o.name for o in result.outcomes] == ["a", "web", "celery", "z"]
    assert [name for name, _ in pipeline.plan(ctx)] == ["a", "web", "celery", "z"]
    done = [r["step"] for r in ctx.journal.records() if r["kind"] == "step.done"]
    assert sorted(done[1:3]) == ["celery", "web"]


def test_a_failing_member_fails_the_group_once_the_others_ended() -> None:
    ctx, _, _ = context()
    log: list[str] = []
    barrier = threading.Barrier(2, timeout=5)
    group = Together(
        (
            Meeting("web", log, barrier, fail=RuntimeError("unhealthy")),
            Meeting("celery", log, barrier),
        )
    )
    result = Pipeline("deploy", [Recorder("a", log), group, Recorder("z", log)]).run(
        ctx, Progress(ctx.ui)
    )
    assert not result.ok and result.failed_step == "web"
    assert "RuntimeError: unhealthy" in result.error
    assert "run celery" in log and "run z" not in log
    assert [o.status for o in result.outcomes[1:3]] == ["failed", "done"]
    assert result.undone == ["celery: celery taken back", "web: web taken back", "a: a taken back"]


def test_an_interrupt_during_a_group_stops_the_members_and_waits_for_them() -> None:
    ctx, _, _ = context()
    log: list[str] = []
    all_began = threading.Barrier(3, timeout=5)

    class Polls(Recorder):  # a health wait: looks again and again until told to stop
        def run(self, ctx: RunContext) -> dict[str, Any]:
            all_began.wait()
            log.append("run wait")
            for _ in range(200):
                ctx.pause(0.05)
            return {}

    class Terminates(Recorder):
        def run(self, ctx: RunContext) -> dict[str, Any]:
            all_began.wait()
            os.kill(os.getpid(), signal.SIGTERM)  # the pipeline's handler: this thread is not main
            return super().run(ctx)

    class Finishes(Recorder):  # a command: ends when it ends, and counts as done
        def run(self, ctx: RunContext) -> dict[str, Any]:
            all_began.wait()
            time.sleep(0.3)
            return super().run(ctx)

    group = Together(
        (Polls("wait", log), Terminates("signal", log, undo=False), Finishes("backup", log))
    )
    result = Pipeline("deploy", [Recorder("a", log), group, Recorder("z", log)]).run(
        ctx, Progress(ctx.ui)
    )
    assert result.exit_code == 130
    assert (result.failed_step, result.error) == ("wait", "interrupted at wait")
    assert [o.status for o in result.outcomes[1:4]] == ["interrupted", "done", "done"]
    assert "run z" not in log
    assert result.undone == [
        "backup: backup taken back",
        "wait: wait taken back",
        "a: a taken back",
    ]
    ends = [(r["step"], r["kind"]) for r in ctx.journal.records() if r["kind"].startswith("step.")]
    assert ("wait", "step.interrupted") in ends and ("backup", "step.done") in ends
    assert not ctx.stopping.is_set()  # the undo's own checks are not told to stop


def test_a_member_whose_command_died_of_the_same_ctrl_c_reports_the_interrupt() -> None:
    ctx, _, _ = context()
    log: list[str] = []
    both_began = threading.Barrier(2, timeout=5)

    class DiesFirst(Recorder):  # its command got the signal before this process did
        def run(self, ctx: RunContext) -> dict[str, Any]:
            both_began.wait()
            raise RuntimeError("pg_dump was killed by signal 2")

    class Interrupts(Recorder):
        def run(self, ctx: RunContext) -> dict[str, Any]:
            both_began.wait()
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGTERM)  # SIGINT may be ignored (a background job)
            ctx.stopping.wait(5)
            return super().run(ctx)

    group = Together((DiesFirst("backup", log), Interrupts("build", log, undo=False)))
    result = Pipeline("deploy", [group]).run(ctx, Progress(ctx.ui))
    assert result.exit_code == 130
    assert (result.failed_step, result.error) == ("backup", "interrupted at backup")
    failed = [r for r in ctx.journal.records() if r["kind"] == "step.failed"]
    assert [r["step"] for r in failed] == ["backup"]
    assert "killed by signal 2" in failed[0]["error"]  # what really happened stays on record


def test_the_journal_ignores_a_line_torn_by_a_crash() -> None:
    ctx, host, _ = context()
    ctx.journal.append("deploy.start", release="r1")
    host.files[ctx.journal.path] += b'{"kind": "step.st'
    assert [r["kind"] for r in ctx.journal.records()] == ["deploy.start"]


def _signal_when_journaled(ctx: RunContext, kind: str, step: str, signum: int) -> None:
    """Send ``signum`` to this process right after the journal records ``kind`` of ``step``:
    the pipeline is then between two steps (its own bookkeeping)."""
    append = ctx.journal.append

    def appending(what: str, **fields: Any) -> dict[str, Any]:
        record = append(what, **fields)
        if what == kind and fields.get("step") == step:
            os.kill(os.getpid(), signum)
        return record

    ctx.journal.append = appending  # type: ignore[method-assign]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_between_two_steps_is_taken_by_the_next_step(signum: int) -> None:
    ctx, _, _ = context()
    log: list[str] = []
    _signal_when_journaled(ctx, "step.done", "a", signum)
    result = Pipeline("deploy", [Recorder("a", log), Recorder("b", log)]).run(
        ctx, Progress(ctx.ui)
    )
    assert (result.ok, result.exit_code, result.error) == (False, 130, "interrupted at b")
    assert log == ["run a", "undo a"]  # b never ran
    kinds = [(r["kind"], r.get("step")) for r in ctx.journal.records()]
    assert ("step.interrupted", "b") in kinds and kinds[-1] == ("deploy.failed", None)


def test_a_signal_while_a_group_ends_well_all_the_same_is_not_lost() -> None:
    """SIGTERM late in `verify celery`, which then succeeds: the run still ends interrupted."""
    ctx, _, _ = context()
    log: list[str] = []

    class LateSignal(Recorder):
        def run(self, ctx: RunContext) -> dict[str, Any]:
            os.kill(os.getpid(), signal.SIGTERM)  # handled in the main thread, which waits
            time.sleep(0.3)  # and the check succeeds anyway
            return super().run(ctx)

    group = Together((Recorder("wait", log, undo=False), LateSignal("celery", log, undo=False)))
    stages = [Recorder("start", log), group, Recorder("record", log)]
    result = Pipeline("deploy", stages).run(ctx, Progress(ctx.ui))
    assert (result.exit_code, result.error) == (130, "interrupted at record")
    assert "run record" not in log and log[-1] == "undo start"


def test_a_signal_whose_raise_a_finalizer_swallowed_still_interrupts_its_step(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Python may run the handler inside a finalizer, which only prints what it raised: a
    CI run's rollback took SIGTERM in a ``Popen.__del__``, printed a traceback and ran on to
    its end, exit 0."""
    ctx, _, _ = context()
    log: list[str] = []

    class Collected:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGTERM)
            for _ in range(1000):  # the handler runs at the latest on this loop's jumps
                pass

    class Swallowing(Recorder):
        def run(self, ctx: RunContext) -> dict[str, Any]:
            Collected()  # freed at once: its __del__ takes the signal
            return super().run(ctx)

    stages = [Recorder("start", log), Swallowing("backup", log), Recorder("record", log)]
    result = Pipeline("rollback", stages).run(ctx, Progress(ctx.ui))
    assert (result.ok, result.exit_code, result.error) == (False, 130, "interrupted at backup")
    assert log == ["run start", "run backup", "undo backup", "undo start"]
    assert "Traceback" not in capsys.readouterr().err


def test_a_second_signal_during_the_undo_is_answered_and_the_undo_finishes() -> None:
    ctx, _, err = context()
    log: list[str] = []

    class SignalledUndo(Recorder):
        def undo(self, ctx: RunContext) -> str:
            os.kill(os.getpid(), signal.SIGTERM)  # the operator presses Ctrl-C again
            time.sleep(0.05)
            return super().undo(ctx)

    steps = [
        Recorder("a", log),
        SignalledUndo("b", log),
        Recorder("c", log, fail=Interrupted("SIGINT")),
    ]
    result = Pipeline("deploy", steps).run(ctx, Progress(ctx.ui))
    assert log[-3:] == ["undo c", "undo b", "undo a"] and result.abandoned is None
    assert result.exit_code == 130
    assert "signal once more to abandon" in err.getvalue()


def test_a_third_signal_abandons_the_undo_and_says_what_is_left() -> None:
    ctx, _, _ = context()
    log: list[str] = []

    class TwiceSignalled(Recorder):
        def undo(self, ctx: RunContext) -> str:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            return super().undo(ctx)

    steps = [
        Recorder("a", log),
        TwiceSignalled("b", log),
        Recorder("c", log, fail=Interrupted("SIGINT")),
    ]
    result = Pipeline("deploy", steps, after_undo=lambda _: "verified").run(
        ctx, Progress(ctx.ui)
    )
    assert result.abandoned == ["b", "a"]
    assert log == ["run a", "run b", "run c", "undo c"]
    assert any("undo ABANDONED" in line and "b, a" in line for line in result.undone)
    records = ctx.journal.records()
    abandoned = [r for r in records if r["kind"] == "undo.abandoned"]
    assert abandoned and abandoned[0]["left"] == ["b", "a"]
    assert records[-1]["undo_abandoned"] == ["b", "a"]


def test_a_signal_after_the_last_step_leaves_a_finished_run_finished() -> None:
    ctx, _, err = context()
    log: list[str] = []
    _signal_when_journaled(ctx, "step.done", "record", signal.SIGTERM)
    result = Pipeline("deploy", [Recorder("a", log), Recorder("record", log)]).run(
        ctx, Progress(ctx.ui)
    )
    assert result.ok and log == ["run a", "run record"]
    assert "after the last step" in err.getvalue()


def test_a_journal_that_fails_as_a_step_begins_still_undoes_the_steps_before() -> None:
    ctx, _, _ = context()
    log: list[str] = []
    append = ctx.journal.append

    def appending(kind: str, **fields: Any) -> dict[str, Any]:
        if kind == "step.start" and fields.get("step") == "b":
            raise RuntimeError("the journal's host stopped answering")
        return append(kind, **fields)

    ctx.journal.append = appending  # type: ignore[method-assign]
    result = Pipeline("deploy", [Recorder("a", log), Recorder("b", log)]).run(
        ctx, Progress(ctx.ui)
    )
    assert (result.ok, result.failed_step) == (False, "b")
    assert "stopped answering" in result.error
    assert log == ["run a", "undo a"]  # b never ran, so it is not undone


def test_a_signal_during_the_final_step_lets_it_finish_and_the_run_stands() -> None:
    ctx, _, err = context()
    log: list[str] = []

    class Final(Recorder):
        final = True

        def run(self, ctx: RunContext) -> dict[str, Any]:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            return super().run(ctx)

    result = Pipeline("deploy", [Recorder("a", log), Final("record", log)]).run(
        ctx, Progress(ctx.ui)
    )
    assert result.ok and log == ["run a", "run record"]
    assert "after the last step" in err.getvalue()


def test_a_third_signal_during_the_final_check_is_recorded_as_an_abandoned_undo() -> None:
    ctx, _, _ = context()
    log: list[str] = []

    def check(_: RunContext) -> str:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        return "verified"

    steps = [Recorder("a", log), Recorder("b", log, fail=RuntimeError("x"), undo=False)]
    result = Pipeline("deploy", steps, after_undo=check).run(ctx, Progress(ctx.ui))
    assert result.abandoned == [] and log == ["run a", "run b", "undo a"]
    assert ctx.journal.records()[-1]["undo_abandoned"] == []
    assert result.as_dict()["undo_abandoned"] == []


def test_a_damaged_line_inside_the_journal_is_skipped_counted_and_said() -> None:
    ctx, host, err = context()
    ctx.journal.append("deploy.start", release="r1")
    host.files[ctx.journal.path] += b'{"kind": "release", "tag": \n[1, 2]\n'
    ctx.journal.append("deploy.done", release="r1")
    assert [r["kind"] for r in ctx.journal.records()] == ["deploy.start", "deploy.done"]
    assert ctx.journal.damaged == 2
    ctx.journal.warn_damaged(ctx.ui.warn)
    assert "2 damaged journal line(s) skipped" in err.getvalue()


def test_the_failure_message_says_what_could_not_be_undone() -> None:
    from deploytools.errors import DeployFailure
    from deploytools.pipeline.engine import raise_if_failed

    ctx, _, _ = context()
    log: list[str] = []

    class BadUndo(Recorder):
        def undo(self, ctx: RunContext) -> str:
            raise RuntimeError("the engine did not come back")

    steps = [BadUndo("start", log), Recorder("wait", log, fail=RuntimeError("x"), undo=False)]
    result = Pipeline("deploy", steps).run(ctx, Progress(ctx.ui))
    with pytest.raises(DeployFailure) as failure:
        raise_if_failed(result, "the logs")
    assert "NOT undone: undo start: RuntimeError: the engine did not come back" in str(
        failure.value
    )
