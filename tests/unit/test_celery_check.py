"""The Celery checks against a scripted Celery client: one distinct message per failure."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import TimeoutError as CeleryTimeout

from deploytools.errors import Interrupted, OperatorError
from deploytools.hosts.local import LocalHost
from deploytools.probes.celery import (
    CANARY_QUEUE,
    MARGIN,
    SERVER_ROUNDS,
    BrokerUrls,
    CeleryCheckFailed,
    Rounds,
    _Checks,
    _client,
    _Voice,
    broker_urls,
    verify_celery,
)
from deploytools.ui import Ui
from tests.support.procs import free_port
from tests.support.stackenv import make_settings

TASKS = ["deploytools.canary", "exampleapp.add [rate_limit=10/m]"]
EVEN_ROUNDS = Rounds(1.0, 1.0)


class FakeResult:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.forgotten = False

    def get(self, timeout: float, interval: float, propagate: bool) -> Any:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer

    def forget(self) -> None:
        self.forgotten = True


class FakeApp:
    """Workers by name -> (registered tasks, release or exception the canary gives)."""

    def __init__(self, workers: dict[str, tuple[list[str], Any]], late: tuple[str, ...] = ()):
        self.workers = workers
        self.late = late  # answer ping but not within the reply window
        self.calls: list[tuple[str, Any]] = []
        self.control = self
        self.now = 0.0  # the fake clock
        self.rounds: list[float] = []  # each ping's timeout

    def ping(self, timeout: float, limit: int) -> list[dict[str, Any]]:
        self.calls.append(("ping", limit))
        self.rounds.append(timeout)
        replies = [{w: {"ok": "pong"}} for w in list(self.workers)[:limit]]
        if len(replies) < limit:
            self.now += timeout  # a ping that gets fewer answers than its limit waits it out
        return replies

    def inspect(self, timeout: float, destination: list[str] | None = None, limit: int = 0) -> Any:
        self.calls.append(("inspect", destination))
        names = destination or [w for w in self.workers if w not in self.late]
        found = {w: self.workers[w][0] for w in names}
        return type("Inspect", (), {"registered": lambda _self: found or None})()

    def add_consumer(self, queue: str, destination: list[str], reply: bool) -> None:
        self.calls.append(("add_consumer", (queue, destination[0])))

    def cancel_consumer(self, queue: str, destination: list[str], reply: bool) -> None:
        self.calls.append(("cancel_consumer", (queue, destination[0])))

    def send_task(
        self, name: str, queue: str, expires: float, retry: bool, **_: Any
    ) -> FakeResult:
        worker = queue.removeprefix(CANARY_QUEUE).replace("_", "@", 1)
        assert not retry  # kombu's default retry policy waits on a lost broker for long
        self.calls.append(("send_task", (name, queue)))
        answer = self.workers[worker][1]
        return FakeResult(answer if isinstance(answer, BaseException) else {"release": answer})


def check(
    tmp_path: Path,
    app: FakeApp,
    release: str | None = "r1",
    rounds: Rounds = EVEN_ROUNDS,
    **celery: Any,
) -> Any:
    conf = make_settings(tmp_path, celery={"expected_workers": 1, **celery}).celery
    assert conf is not None
    err = io.StringIO()
    ui = Ui(stderr=err, stdout=io.StringIO())
    return _Checks(app, conf, ui.warn, lambda: app.now, rounds).run(release), err.getvalue()


def test_all_good_sends_one_canary_per_worker_through_its_own_queue(tmp_path: Path) -> None:
    app = FakeApp({"w1@h": (TASKS, "r1"), "w2@h": (TASKS, "r1")})
    report, _ = check(tmp_path, app, expected_workers=2)
    assert report.workers == ["w1@h", "w2@h"]
    assert report.releases == {"w1@h": "r1", "w2@h": "r1"}
    assert ("ping", 2) in app.calls
    assert ("send_task", ("deploytools.canary", "deploytools.canary.w1_h")) in app.calls
    adds = [c[1] for c in app.calls if c[0] == "add_consumer"]
    cancels = [c[1] for c in app.calls if c[0] == "cancel_consumer"]
    assert (
        adds
        == cancels
        == [("deploytools.canary.w1_h", "w1@h"), ("deploytools.canary.w2_h", "w2@h")]
    )


def test_no_worker_answering(tmp_path: Path) -> None:
    with pytest.raises(CeleryCheckFailed) as failure:
        check(tmp_path, FakeApp({}))
    assert failure.value.kind == "no-worker"
    assert failure.value.problem.startswith("no worker answering")


def test_too_few_workers_after_pinging_in_rounds_until_the_timeout(tmp_path: Path) -> None:
    app = FakeApp({"w1@h": (TASKS, "r1")})
    with pytest.raises(CeleryCheckFailed) as failure:
        check(tmp_path, app, expected_workers=3, ping_timeout=3.5)
    assert failure.value.kind == "too-few-workers"
    assert "too few workers: 1 of 3 expected answered (w1@h)" in failure.value.problem
    assert [c for c in app.calls if c[0] == "ping"] == [("ping", 3)] * 4  # 1 + 1 + 1 + 0.5 s
    assert app.now == pytest.approx(3.5)


def test_ping_rounds_are_short_for_half_the_timeout_then_long(tmp_path: Path) -> None:
    app = FakeApp({"w1@h": (TASKS, "r1")})
    with pytest.raises(CeleryCheckFailed):
        check(tmp_path, app, rounds=SERVER_ROUNDS, expected_workers=2, ping_timeout=3.5)
    assert app.rounds == pytest.approx([0.25] * 7 + [1.0, 0.75])


def test_task_missing_names_worker_and_task(tmp_path: Path) -> None:
    app = FakeApp({"w1@h": (["deploytools.canary"], "r1")})
    with pytest.raises(CeleryCheckFailed) as failure:
        check(tmp_path, app, required_tasks=["exampleapp.add"])
    assert failure.value.kind == "task-missing"
    assert failure.value.problem == "task missing: w1@h lacks exampleapp.add"
    assert ("cancel_consumer", ("deploytools.canary.w1_h", "w1@h")) in app.calls


def test_wrong_release(tmp_path: Path) -> None:
    with pytest.raises(CeleryCheckFailed) as failure:
        check(tmp_path, FakeApp({"w1@h": (TASKS, "r0")}))
    assert failure.value.kind == "wrong-release"
    assert failure.value.problem == "wrong release: expected 'r1', but w1@h runs 'r0'"


def test_a_stale_extra_worker_is_seen_and_checked(tmp_path: Path) -> None:
    app = FakeApp({"new@h": (TASKS, "r1"), "old@h": (TASKS, "r0")})
    with pytest.raises(CeleryCheckFailed) as failure:
        check(tmp_path, app)  # one expected: ping stops at the first answer
    assert "old@h runs 'r0'" in failure.value.problem


def test_extra_worker_on_the_right_release_only_warns(tmp_path: Path) -> None:
    report, err = check(tmp_path, FakeApp({"a@h": (TASKS, "r1"), "b@h": (TASKS, "r1")}))
    assert report.extra == ["b@h"]
    assert "2 workers answered, 1 expected: a@h, b@h" in err


def test_a_worker_late_for_the_reply_window_is_asked_again(tmp_path: Path) -> None:
    app = FakeApp({"w1@h": (TASKS, "r1")}, late=("w1@h",))
    report, _ = check(tmp_path, app)
    assert report.workers == ["w1@h"]
    assert ("inspect", ["w1@h"]) in app.calls


def test_worker_that_never_answers_the_tasks_query(tmp_path: Path) -> None:
    app = FakeApp({"w1@h": (TASKS, "r1")}, late=("w1@h",))
    asked: list[float] = []

    def silent(timeout: float, destination: list[str] | None = None, limit: int = 0) -> Any:
        asked.append(timeout)
        app.now += timeout  # nobody answers: the query waits its whole timeout
        return type("Inspect", (), {"registered": lambda _self: None})()

    app.inspect = silent  # type: ignore[method-assign]
    with pytest.raises(CeleryCheckFailed) as failure:
        check(tmp_path, app, ping_timeout=4.0)
    assert len(asked) >= 3  # the reply window, then rounds until ping_timeout is spent
    assert sum(asked[1:]) == pytest.approx(4.0)
    assert failure.value.kind == "worker-silent"
    assert "w1@h answered the ping but not the registered-tasks query" in failure.value.problem


def test_silent_canary_and_failing_canary(tmp_path: Path) -> None:
    with pytest.raises(CeleryCheckFailed) as failure:
        check(tmp_path, FakeApp({"w1@h": (TASKS, CeleryTimeout("late"))}), canary_timeout=2)
    assert failure.value.kind == "canary-timeout"
    assert "no answer within 2s from w1@h" in failure.value.problem
    with pytest.raises(CeleryCheckFailed) as failure:
        check(tmp_path, FakeApp({"w1@h": (TASKS, KeyError("RELEASE_ID"))}))
    assert failure.value.kind == "canary-failed"


def test_no_release_given_skips_the_comparison_and_says_so(tmp_path: Path) -> None:
    report, err = check(tmp_path, FakeApp({"w1@h": (TASKS, "whatever")}), release=None)
    assert report.releases == {"w1@h": "whatever"}
    assert "release was not compared" in err


def test_broker_urls(tmp_path: Path) -> None:
    conf = make_settings(tmp_path)
    redis = broker_urls(conf, {"CELERY_BROKER_URL": "redis://:pw@127.0.0.1:6379/0"})
    assert redis.backend == redis.broker and redis.transport_options == {}
    amqp = {"CELERY_BROKER_URL": "amqp://u:p@mq:5672//", "CELERY_RESULT_BACKEND": "rpc://"}
    assert broker_urls(conf, amqp).backend == "rpc://"
    with pytest.raises(OperatorError, match="CELERY_RESULT_BACKEND is not set"):
        broker_urls(conf, {"CELERY_BROKER_URL": "amqp://mq//"})
    local = broker_urls(conf, {"CELERY_FS_ROOT": "var/q"})
    assert local.filesystem
    root = conf.path(conf.app_dir) / "var/q"
    assert local.transport_options["control_folder"] == str(root / "control")
    assert local.backend == (root / "results").as_uri()


def test_broker_unreachable_is_reported_without_the_password(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = make_settings(tmp_path)
    ui = Ui(stderr=io.StringIO(), stdout=io.StringIO())
    url = f"redis://:hunter2pw@127.0.0.1:{port}/0"
    with pytest.raises(CeleryCheckFailed) as failure:
        verify_celery(conf, {"CELERY_BROKER_URL": url}, "r1", ui, host=LocalHost())
    assert failure.value.kind == "broker-unreachable"
    assert failure.value.problem.startswith(f"broker unreachable: redis://:***@127.0.0.1:{port}/0")
    assert "hunter2pw" not in str(failure.value)


def test_filesystem_broker_without_a_worker_is_no_worker_answering(tmp_path: Path) -> None:
    conf = make_settings(tmp_path, app_dir=str(tmp_path), celery={"ping_timeout": 0.2})
    ui = Ui(stderr=io.StringIO(), stdout=io.StringIO())
    with pytest.raises(CeleryCheckFailed) as failure:
        verify_celery(conf, {"CELERY_BROKER_URL": "filesystem://"}, "r1", ui, host=LocalHost())
    assert failure.value.kind == "no-worker"
    assert (tmp_path / "var/celery/control").is_dir()



@dataclass
class LockedBroker:
    root: Path
    release: Callable[[], None]


@pytest.fixture
def locked_broker(tmp_path: Path) -> Iterator[LockedBroker]:
    """A filesystem broker whose reply exchange file another holder keeps locked: kombu's
    client waits on that lock (flock) with no timeout of its own."""
    fcntl = pytest.importorskip("fcntl")
    control = tmp_path / "var/celery/control"
    control.mkdir(parents=True)
    with (control / "reply.celery.pidbox.exchange").open("a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        yield LockedBroker(control.parent, lambda: fcntl.flock(held.fileno(), fcntl.LOCK_UN))


def quick_settings(tmp_path: Path) -> Any:
    celery = {"ping_timeout": 0.1, "canary_timeout": 0.1, "reply_window": 0}
    return make_settings(tmp_path, app_dir=str(tmp_path), celery=celery)


def check_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "celery check"}


def test_a_check_that_blocks_anyway_fails_at_its_deadline_then_ends_silently(
    tmp_path: Path, locked_broker: LockedBroker
) -> None:
    conf = quick_settings(tmp_path)
    limit = conf.celery.ping_timeout + MARGIN  # the ping's budget and the margin
    err = io.StringIO()
    ui = Ui(stderr=err, stdout=io.StringIO())
    before = check_threads()
    started = time.monotonic()
    with pytest.raises(CeleryCheckFailed) as failure:
        verify_celery(conf, {"CELERY_BROKER_URL": "filesystem://"}, "r1", ui, host=LocalHost())
    took = time.monotonic() - started
    assert failure.value.kind == "broker-unreachable"
    assert failure.value.problem == (
        f"broker did not answer within {limit:g}s while pinging the workers: "
        f"filesystem:// in {locked_broker.root} (from local)"
    )
    assert took < limit + 5.0  # generous: a hang is what this catches
    left = check_threads() - before
    assert len(left) == 1 and all(t.daemon for t in left)  # it never keeps the process alive

    locked_broker.release()  # the check goes on, sees it was given up, and stops at its round
    for thread in left:
        thread.join(20.0)
        assert not thread.is_alive()
    assert err.getvalue() == ""  # and it said nothing after its caller had moved on


def test_told_to_stop_ends_a_blocked_check_at_once(
    tmp_path: Path, locked_broker: LockedBroker
) -> None:
    conf = quick_settings(tmp_path)
    stopping = threading.Event()
    threading.Timer(0.3, stopping.set).start()
    ui = Ui(stderr=io.StringIO(), stdout=io.StringIO())
    started = time.monotonic()
    with pytest.raises(Interrupted):
        broker = {"CELERY_BROKER_URL": "filesystem://"}
        verify_celery(conf, broker, "r1", ui, host=LocalHost(), stopping=stopping)
    assert time.monotonic() - started < MARGIN - 1.0  # not cut at the step's time limit


def test_warnings_stop_once_the_caller_stopped_listening() -> None:
    err = io.StringIO()
    voice = _Voice(Ui(stderr=err, stdout=io.StringIO()))
    voice.warn("heard")
    voice.close()  # the check was given up: its thread may still try to speak
    voice.warn("not heard")
    assert "heard" in err.getvalue() and "not heard" not in err.getvalue()


def test_closing_the_client_never_hides_what_the_check_found() -> None:
    """rpc://'s result consumer cannot stop when no result was awaited (it never started)."""
    urls = BrokerUrls(f"amqp://u:p@127.0.0.1:{free_port()}//", "rpc://", {})
    with pytest.raises(LookupError, match="what the check found"), _client(urls, 1.0):
        raise LookupError("what the check found")
