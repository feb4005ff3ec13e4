"""A deploy under signals and a damaged journal, on the process runtime, through the real CLI.

Signals are sent at every step of a deploy (and between steps, and late in ``verify celery``
while its checks go on to succeed), then again during the undo. Whatever the moment, the run
ends with exit 130, the journal says where it stopped, the lock is released and the release
that served before serves again; only a third signal abandons the undo, and then says so.
The project is this module's own (its own port and journal): a test here may damage it.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Run
from tests.support.deployproject import migration, stop_process
from tests.support.processdeploy import ENV, NEW_REVISION, WEB, ProcessSite, position, wait_for

pytestmark = pytest.mark.integration

STEPS = [
    "validate env",
    "lock",
    "snapshot",
    "build",
    "lint migrations",
    "backup",
    "migrate",
    "keep flags",
    "start",
    "wait healthy",
    "verify celery",
    "record",
]


def journaled(site: ProcessSite, count: int, kind: str, step: str) -> Callable[[], bool]:
    def seen() -> bool:
        return any(
            e["kind"] == kind and e.get("step") == step for e in site.journal_since(count)
        )

    return seen


Moment = tuple[Callable[[], bool], float, int]  # once this holds, after this delay, this signal


def signal_deploy(site: ProcessSite, moments: list[Moment]) -> tuple[int, str, str]:
    """Run a deploy and send each signal at its moment, in turn.

    A signal sent before the last one was taken may merge with it (the kernel keeps one
    pending SIGTERM): the moments of repeated signals are journal events that prove the one
    before has been taken, plus a delay well inside the step they aim at.
    """
    proc = site.project.start("deploy", "--env", ENV)
    try:
        for ready, delay, signum in moments:
            wait_for("the moment to signal", ready, proc, timeout=120)
            time.sleep(delay)
            proc.send_signal(signum)
    finally:
        out, err = stop_process(proc, timeout=180)
    return proc.returncode, out, err


def interrupted_steps(events: list[dict[str, Any]]) -> list[str]:
    return [e["step"] for e in events if e["kind"] == "step.interrupted"]


def assert_undone(site: ProcessSite, previous: str, events: list[dict[str, Any]]) -> None:
    """The run is journaled as failed (its release too, once it had a name), the lock is gone
    and the previous release serves."""
    failed = [e for e in events if e["kind"] == "deploy.failed"]
    assert len(failed) == 1 and failed[0]["error"].startswith("interrupted at ")
    named = any(e["kind"] == "step.done" and e["step"] == "snapshot" for e in events)
    recorded = events[-1]["kind"] == "release" and events[-1]["result"] == "failed"
    assert recorded or (not named and events[-1] == failed[0]), events[-1]
    assert site.serves(previous)
    assert site.good()[-1]["tag"] == previous
    site.no_leftovers()


@pytest.mark.parametrize(
    ("step", "signum"),
    [
        (step, {"backup": signal.SIGINT, "start": signal.SIGHUP}.get(step, signal.SIGTERM))
        for step in STEPS[:-1]
    ],
)
def test_a_signal_at_any_step_ends_in_the_undo(site: ProcessSite, step: str, signum: int) -> None:
    previous = site.running()
    count = len(site.project.journal(ENV))

    code, out, err = signal_deploy(site, [(journaled(site, count, "step.start", step), 0, signum)])

    events = site.journal_since(count)
    assert code == 130, out + err
    assert "Traceback" not in out + err
    stopped = interrupted_steps(events)
    # A step may end before the signal lands: then the next one takes it, never none.
    assert stopped and min(position(STEPS, s) for s in stopped) >= position(STEPS, step), events
    assert any(f"interrupted at {s}" in err for s in stopped)
    assert_undone(site, previous, events)


def test_a_signal_late_in_the_checks_is_not_lost_when_they_succeed(site: ProcessSite) -> None:
    """One of the two checks is over and the other goes on (and succeeds): SIGTERM then must
    still end the run, where it lands (the other check, or record if it got through). Which
    ends first varies: the Celery check's rounds, or the health wait's min_healthy hold."""
    previous = site.running()
    count = len(site.project.journal(ENV))
    checks = ("wait healthy", "verify celery")

    def one_done() -> bool:
        return any(journaled(site, count, "step.done", step)() for step in checks)

    code, out, err = signal_deploy(site, [(one_done, 0, signal.SIGTERM)])

    events = site.journal_since(count)
    assert code == 130, out + err
    done = [e["step"] for e in events if e["kind"] == "step.done" and e["step"] in checks]
    assert interrupted_steps(events)[0] in [*(set(checks) - set(done[:1])), "record"], events
    assert not [e for e in events if e["kind"] == "step.done" and e["step"] == "record"]
    assert_undone(site, previous, events)


def marked_running(site: ProcessSite) -> list[str]:
    """The tags `invoke releases` marks with * (running)."""
    table = site.project.invoke("releases", "--env", ENV)
    assert table.returncode == 0, table.output
    return re.findall(r"│\s*\*\s*│\s*(\S+)", table.stdout)


def broken_release(site: ProcessSite) -> str:
    return site.project.commit("a release that never becomes healthy", {WEB: site.broken_health()})


def test_a_second_signal_during_the_undo_is_answered_and_the_undo_finishes(
    site: ProcessSite,
) -> None:
    previous = site.running()
    sha = broken_release(site)
    count = len(site.project.journal(ENV))
    try:
        code, out, err = signal_deploy(
            site,
            [
                (journaled(site, count, "step.start", "wait healthy"), 0.5, signal.SIGTERM),
                # The undo has begun: stopping the new release, starting the old one.
                (journaled(site, count, "step.interrupted", "wait healthy"), 0.3, signal.SIGTERM),
            ],
        )
    finally:
        site.take_back(sha)

    events = site.journal_since(count)
    assert code == 130, out + err
    assert "signal once more to abandon" in err
    assert [e["step"] for e in events if e["kind"] == "undo.done"][:1] == ["start"]
    assert not [e for e in events if e["kind"] == "undo.abandoned"]
    assert f"release {previous} verified healthy again" in err
    worker = site.project.state_dir(ENV) / "run/celery-worker.pid"
    assert f'"release": "{previous}"' in worker.read_text()  # the failed one's worker is gone
    assert_undone(site, previous, events)
    assert marked_running(site) == [previous]


def test_a_third_signal_abandons_the_undo_and_says_what_is_left(site: ProcessSite) -> None:
    site.running()
    sha = broken_release(site)
    count = len(site.project.journal(ENV))
    try:
        in_undo = journaled(site, count, "step.interrupted", "wait healthy")
        code, out, err = signal_deploy(
            site,
            [
                (journaled(site, count, "step.start", "wait healthy"), 0.5, signal.SIGTERM),
                (in_undo, 0.3, signal.SIGTERM),  # answered: the undo goes on
                (in_undo, 1.0, signal.SIGTERM),  # a second later, still in the undo: abandoned
            ],
        )
    finally:
        site.take_back(sha)

    events = site.journal_since(count)
    assert code == 130, out + err
    assert "undo ABANDONED" in err and "what runs now is unknown" in err
    abandoned = [e for e in events if e["kind"] == "undo.abandoned"]
    # Wherever the third signal lands (an undo step, or the check of the old release after
    # them), what was left is named, and nothing claims to know what runs.
    assert len(abandoned) == 1 and set(abandoned[0]["left"]) <= {"start", "migrate"}
    assert events[-1]["kind"] == "release" and events[-1]["undo_abandoned"] == abandoned[0]["left"]
    site.no_leftovers()
    # The journal no longer claims the old release runs; the next deploy asks the runtime.
    assert marked_running(site) == []
    again = site.project.deploy(ENV)
    assert again.returncode == 0, again.output


@pytest.fixture
def journal(site: ProcessSite) -> Iterator[tuple[Path, str]]:
    """The journal of a serving site (and the tag it serves), put back as it was after the
    test, which damages it: the tests after it read the journal whole."""
    previous = site.running()
    path = site.project.state_dir(ENV) / "journal.jsonl"
    saved = path.read_bytes()
    try:
        yield path, previous
    finally:
        path.write_bytes(saved)


def failed_broken_deploy(site: ProcessSite) -> Run:
    sha = broken_release(site)
    try:
        return site.project.deploy(ENV)
    finally:
        site.take_back(sha)


def test_a_deploy_with_no_journal_undoes_to_what_the_runtime_runs(
    site: ProcessSite, journal: tuple[Path, str]
) -> None:
    """The journal is lost: a failed deploy must not stop the serving release for good."""
    path, previous = journal
    path.unlink()
    run = failed_broken_deploy(site)
    assert run.returncode == 1, run.output
    assert f"but the stack runs {previous}" in run.stderr
    assert f"release {previous} started again" in run.stderr
    assert site.serves(previous)


def test_a_damaged_journal_line_is_skipped_and_the_runtime_says_what_runs(
    site: ProcessSite, journal: tuple[Path, str]
) -> None:
    path, previous = journal
    lines = path.read_text().splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if '"kind": "release"' in line)
    lines[last] = '{"kind": "release", "tag": \n'  # a disk error in the running release's record
    path.write_text("".join(lines))
    run = failed_broken_deploy(site)
    history = site.project.invoke("history", "--env", ENV, "--json")
    assert run.returncode == 1, run.output
    assert "Traceback" not in run.output + history.output
    assert history.returncode == 0 and "1 damaged journal line" in history.stderr
    assert f"release {previous} started again" in run.stderr
    assert site.serves(previous)


def test_a_value_no_process_could_receive_is_refused_before_anything_stops(
    site: ProcessSite,
) -> None:
    """200 kB in one variable: E2BIG on Linux. The deploy and stack.up refuse it up front."""
    from deploytools.env.file import update
    from deploytools.hosts.local import LocalHost

    previous = site.running()
    pid = site.pid()
    env_file = str(site.project.file(f"config/{ENV}.env"))
    original = site.project.file(f"config/{ENV}.env").read_bytes()
    update(LocalHost(), env_file, {"APP_BLOB": "b" * 200_000})
    try:
        validate = site.project.invoke("env.validate", "--env", ENV)
        deploy = site.project.deploy(ENV)
        up = site.project.invoke("stack.up", "--env", ENV, "--release", previous)
    finally:
        site.project.file(f"config/{ENV}.env").write_bytes(original)
    for run in (validate, deploy, up):
        assert run.returncode == 2, run.output
        assert "APP_BLOB" in run.output and "Traceback" not in run.output
        assert "b" * 100 not in run.output
    assert "no process can receive" in validate.stdout + validate.stderr
    assert "could not start" in up.stderr
    assert site.pid() == pid and site.serves(previous)  # nothing was stopped
    site.no_leftovers()


def test_sighup_to_a_db_task_ends_in_its_cleanup(site: ProcessSite) -> None:
    """Outside a pipeline too: SIGHUP (a closed SSH session) rolls the migration back and
    releases the lock, instead of killing the process where it stands."""
    site.running()
    state = site.project.database(ENV)
    marker = site.project.file("example/var/in-0004")
    slow = migration(
        "0004",
        'op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))\n'
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
        "import time\ntime.sleep(120)",
    )
    sha = site.project.commit("a migration that takes long", {NEW_REVISION: slow})
    try:
        proc = site.project.start("db.migrate", "--env", ENV)
        try:
            wait_for("migration 0004 running", marker.exists, proc)
            proc.send_signal(signal.SIGHUP)
        finally:
            out, err = stop_process(proc)
    finally:
        marker.unlink(missing_ok=True)
        site.take_back(sha)
    assert proc.returncode == 130, out + err
    assert "interrupted (SIGHUP)" in err and "Traceback" not in out + err
    assert site.project.database(ENV) == state
    site.no_leftovers()
