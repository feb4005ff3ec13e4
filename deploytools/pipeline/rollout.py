"""Run the same per-host work over many hosts: in batches, a bounded number at once, with a
failure budget and a rule for what happens when it is exceeded.

The strategy only, apart from what it runs (Kamal's ``on(hosts, in: :groups, limit:)`` runs
the same boot code over groups; here ``per_host`` is the deploy's per-host stages):

- ``plan_batches``: an optional canary batch of exactly one host (the first: the caller puts
  the primary first), then slices of ``batch_size`` hosts. Within a batch at most
  ``max_parallel`` hosts run at once; the next batch begins once the whole batch has ended,
  after ``pause`` seconds.
- The budget: ``max_fail`` hosts may fail over the whole rollout. It is exceeded when the
  number of failed hosts is *greater* than ``max_fail``: ``max_fail = 1`` tolerates exactly
  one failed host, the second stops the rollout; ``max_fail = 0`` stops at the first. Every
  exception counts as a failure, an unreachable host's too (Ansible does not count those).
  The budget is looked at as each host ends: once exceeded, no further host starts (neither
  the rest of its batch nor a later batch); the hosts already running end on their own.
  A canary that fails stops the rollout whatever ``max_fail`` says.
- Exceeded (or canary failed), ``on_failure = "rollback"`` runs ``revert`` on every host
  ``per_host`` began on, the failed ones included (one that failed may be half-switched, so
  ``revert`` must be safe on a host that is already back or never switched); tolerated
  failures in a rollout that went on are not reverted. ``"halt"`` reverts nothing and the
  result names the hosts left on the new release (or half-way).

Signals: a ``KeyboardInterrupt`` (``Interrupted``) that reaches the waiting thread, or
``stopping`` set by anyone, means no new host starts; ``stopping`` is set so that running
hosts stop at their next look (``RunContext.pause``), and they are waited for: each
``per_host`` must be bounded by its own timeouts, which is what bounds that wait. Nothing is
reverted then: the result says ``interrupted`` and which hosts changed, for the caller's undo
(``revert_changed``). A second signal while running hosts are waited for is not held back: it
propagates at once (the operator abandons the wait; the threads end by their own timeouts).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Generic, Literal, TypeVar

from deploytools.errors import OperatorError, one_line

H = TypeVar("H")
R = TypeVar("R")

OnFailure = Literal["rollback", "halt"]
Ran = Literal["not_started", "ok", "failed", "interrupted"]
Reverted = Literal["reverted", "revert_failed"]

PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")
ROW_COLUMNS = ["host", "batch", "state", "seconds", "error"]
WAIT_STEP = 0.2  # short waits let a signal in (Windows too)


def resolve_count(value: int | str, total: int, *, key: str, minimum: int = 1) -> int:
    """``value`` hosts, given as a count or as "N%" of ``total`` hosts.

    A percentage is floored, then raised to ``minimum``: batch sizes take 1 (as Ansible's
    ``serial`` and Kamal's ``boot.limit``: 25 % of 3 hosts is 1 host), a failure budget 0
    (10 % of 4 hosts tolerates no failure). A percentage must be above 0 and at most 100; a
    count at least ``minimum``. ``key`` names the setting in the message.
    """
    if isinstance(value, str) and (match := PERCENT.fullmatch(value)):
        percent = Fraction(match.group(1))
        if not 0 < percent <= 100:
            raise OperatorError(
                f"{key} = {value!r}: a percentage must be above 0 % and at most 100 %",
                f'set {key} to a percentage such as "25%", or to a count of hosts',
            )
        return max(int(percent * total / 100), minimum)
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    raise OperatorError(
        f"{key} = {value!r}: expected a count of hosts (at least {minimum}) or a percentage",
        f'set {key} to a whole number such as 2, or to a percentage such as "25%"',
    )


@dataclass(frozen=True)
class RolloutPolicy:
    """How hosts are rolled: counts already resolved (``resolve`` takes "N%")."""

    max_parallel: int = 1
    batch_size: int | None = None  # None: every host in one batch (after the canary)
    pause: float = 0.0  # seconds between two batches
    canary: bool = False  # a first batch of exactly one host
    max_fail: int = 0  # failed hosts tolerated over the whole rollout
    on_failure: OnFailure = "rollback"

    def __post_init__(self) -> None:
        wrong = [
            ("max_parallel", self.max_parallel < 1, "at least 1"),
            ("batch_size", self.batch_size is not None and self.batch_size < 1, "at least 1"),
            ("pause", self.pause < 0, "0 or more seconds"),
            ("max_fail", self.max_fail < 0, "0 or more"),
            ("on_failure", self.on_failure not in ("rollback", "halt"), '"rollback" or "halt"'),
        ]
        for key, bad, expected in wrong:
            if bad:
                raise OperatorError(
                    f"rollout.{key} = {getattr(self, key)!r}: expected {expected}",
                    f"correct rollout.{key} in the environment's settings",
                )

    @classmethod
    def resolve(
        cls,
        total: int,
        *,
        max_parallel: int = 1,
        batch_size: int | str | None = None,
        pause: float = 0.0,
        canary: bool = False,
        max_fail: int | str = 0,
        on_failure: OnFailure = "rollback",
    ) -> RolloutPolicy:
        """The policy for ``total`` hosts from settings as written (counts or "N%")."""
        size = None
        if batch_size is not None:
            size = resolve_count(batch_size, total, key="rollout.batch_size")
        budget = resolve_count(max_fail, total, key="rollout.max_fail", minimum=0)
        return cls(max_parallel, size, pause, canary, budget, on_failure)


def plan_batches(hosts: Sequence[H], policy: RolloutPolicy) -> list[list[H]]:
    """The canary (the first host) alone when asked, then the rest by ``batch_size``."""
    rest = list(hosts)
    batches: list[list[H]] = []
    if policy.canary and rest:
        batches.append([rest.pop(0)])
    size = policy.batch_size or len(rest)
    batches += [rest[i : i + size] for i in range(0, len(rest), size)]
    return batches


def describe(policy: RolloutPolicy, batches: Sequence[Sequence[str]]) -> str:
    """The rollout in words: what a deploy's plan and the verify gate show."""
    shown = " then ".join("[" + ", ".join(b) + "]" for b in batches)
    return (
        f"rolling in {len(batches)} batch(es) {shown}, {policy.max_parallel} at once, "
        f"pause {policy.pause:g} s, max_fail {policy.max_fail}, on_failure {policy.on_failure}"
    )


@dataclass
class HostOutcome(Generic[H, R]):
    """How one host went: its ``per_host`` (``ran``), then its revert if one ran."""

    host: H
    name: str
    batch: int  # from 1
    ran: Ran = "not_started"
    seconds: float = 0.0
    error: str = ""
    failure: BaseException | None = None  # what ``error`` says, for a caller's own message
    value: R | None = None
    reverted: Reverted | None = None
    revert_seconds: float = 0.0
    revert_error: str = ""

    @property
    def began(self) -> bool:
        return self.ran != "not_started"

    @property
    def state(self) -> str:
        """ok | failed | interrupted | not_started | reverted | revert_failed."""
        return self.reverted or self.ran

    @property
    def changed(self) -> bool:
        """``per_host`` began here and no revert brought the host back."""
        return self.began and self.reverted != "reverted"


@dataclass
class RolloutResult(Generic[H, R]):
    policy: RolloutPolicy
    outcomes: list[HostOutcome[H, R]]
    batches: list[list[str]]
    budget_exceeded: bool = False
    canary_failed: bool = False
    interrupted: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def failed(self) -> int:
        return sum(o.ran == "failed" for o in self.outcomes)

    @property
    def ok(self) -> bool:
        """Every batch ran, within the budget (tolerated failures are listed, not fatal)."""
        return not (self.budget_exceeded or self.canary_failed or self.interrupted)

    def changed_hosts(self) -> list[H]:
        """Hosts that may run the new release: ``per_host`` began there (the failed and
        interrupted ones perhaps half-way) and no revert brought them back."""
        return [o.host for o in self.outcomes if o.changed]

    def summary(self) -> str:
        """The rollout in words: how far it went, why it stopped, what was put back."""

        def names(pick: Callable[[HostOutcome[H, R]], bool]) -> str:
            return ", ".join(o.name for o in self.outcomes if pick(o))

        done = sum(o.ran == "ok" for o in self.outcomes)
        said = [f"{done} of {len(self.outcomes)} hosts switched in {len(self.batches)} batches"]
        if self.canary_failed:
            said.append(f"the canary {self.outcomes[0].name} failed: nothing else ran")
        elif self.budget_exceeded:
            said.append(
                f"{self.failed} hosts failed, more than max_fail = {self.policy.max_fail}"
                " allows: the rollout stopped"
            )
        elif failed := names(lambda o: o.ran == "failed"):
            said.append(f"failed within max_fail = {self.policy.max_fail}: {failed}")
        if self.interrupted:
            said.append("interrupted")
        if not_started := names(lambda o: not o.began):
            said.append(f"not started: {not_started}")
        if reverted := names(lambda o: o.reverted == "reverted"):
            said.append(f"reverted: {reverted}")
        if broken := names(lambda o: o.reverted == "revert_failed"):
            said.append(f"revert FAILED on: {broken}")
        if not self.ok and (left := names(lambda o: o.changed)):
            why = "on_failure = halt" if self.policy.on_failure == "halt" else "not reverted"
            said.append(f"left on the new release or half-way ({why}): {left}")
        return "; ".join(said)

    def as_rows(self) -> list[list[str]]:
        """One row a host, under ``ROW_COLUMNS``."""
        return [
            [
                o.name,
                str(o.batch),
                o.state if o.ran == "ok" or o.reverted is None else f"{o.ran}, then {o.state}",
                f"{o.seconds:.1f}" if o.began else "",
                "; ".join(filter(None, [o.error, o.revert_error and f"revert: {o.revert_error}"])),
            ]
            for o in self.outcomes
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "interrupted": self.interrupted,
            "budget_exceeded": self.budget_exceeded,
            "canary_failed": self.canary_failed,
            "failed": self.failed,
            "max_fail": self.policy.max_fail,
            "on_failure": self.policy.on_failure,
            "batches": self.batches,
            "changed": [o.name for o in self.outcomes if o.changed],
            "hosts": [
                {
                    "host": o.name,
                    "batch": o.batch,
                    "state": o.state,
                    "ran": o.ran,
                    "seconds": round(o.seconds, 3),
                    **({"error": o.error} if o.error else {}),
                    **({"revert_seconds": round(o.revert_seconds, 3)} if o.reverted else {}),
                    **({"revert_error": o.revert_error} if o.revert_error else {}),
                }
                for o in self.outcomes
            ],
        }


def run_rollout(
    hosts: Sequence[H],
    per_host: Callable[[H], R],
    policy: RolloutPolicy,
    *,
    revert: Callable[[H], object] | None = None,
    name: Callable[[H], str] = str,
    stopping: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] | None = None,
    on_batch: Callable[[int, Sequence[H]], None] | None = None,
) -> RolloutResult[H, R]:
    """Run ``per_host`` over ``hosts`` as ``policy`` says (see the module docstring).

    ``sleep(seconds)`` waits the pause and returns early once ``stopping`` is set (default:
    ``stopping.wait``); ``clock`` times each host; ``on_batch(number, hosts)`` is called as a
    batch begins. Returns when every call it started has returned.
    """
    if policy.on_failure == "rollback" and revert is None:
        raise ValueError('on_failure = "rollback" needs a revert')
    if stopping is None:
        stopping = threading.Event()
    sleep = sleep or stopping.wait
    planned = plan_batches(hosts, policy)
    outcomes: list[HostOutcome[H, R]] = [
        HostOutcome(host, name(host), number)
        for number, batch in enumerate(planned, 1)
        for host in batch
    ]
    if len({o.name for o in outcomes}) < len(outcomes):
        raise ValueError(f"a host is listed twice: {[o.name for o in outcomes]}")
    result = RolloutResult(policy, outcomes, [[name(h) for h in batch] for batch in planned])
    hold = threading.Event()  # set: no further host starts

    def began(outcome: HostOutcome[H, R]) -> None:
        outcome.ran = "interrupted"  # until it ends: what an abandoned wait leaves

    def ended(outcome: HostOutcome[H, R], seconds: float, got: R | BaseException) -> None:
        outcome.seconds = seconds
        if not isinstance(got, BaseException):
            outcome.ran, outcome.value = "ok", got
            return
        outcome.error, outcome.failure = one_line(got), got
        if isinstance(got, KeyboardInterrupt) or stopping.is_set():  # failed because told to
            outcome.ran = "interrupted"
            result.interrupted = True
            stopping.set()
        else:
            outcome.ran = "failed"
            result.canary_failed |= policy.canary and outcome.batch == 1
            result.budget_exceeded |= result.failed > policy.max_fail
        if result.interrupted or result.canary_failed or result.budget_exceeded:
            hold.set()

    try:
        for number, batch in enumerate(planned, 1):
            if number > 1 and policy.pause and not (hold.is_set() or stopping.is_set()):
                sleep(policy.pause)
            if hold.is_set() or stopping.is_set():
                break
            if on_batch is not None:
                on_batch(number, batch)
            mine = [o for o in outcomes if o.batch == number]
            _over(mine, per_host, result, began, ended, hold=hold, stopping=stopping, clock=clock)
    except _Abandon as abandon:
        raise abandon.signal from None
    except KeyboardInterrupt:
        stopping.set()
    result.interrupted |= stopping.is_set()
    stopped = result.budget_exceeded or result.canary_failed
    if stopped and not result.interrupted and policy.on_failure == "rollback" and revert:
        revert_changed(result, revert, clock=clock)
    return result


def revert_changed(
    result: RolloutResult[H, Any],
    revert: Callable[[H], object],
    *,
    clock: Callable[[], float] = time.monotonic,
) -> RolloutResult[H, Any]:
    """Run ``revert`` on every host the rollout changed, ``max_parallel`` at a time, and
    record each one's outcome (a revert that fails is said, not hidden).

    For run_rollout's rollback and for the caller's undo after an interrupted rollout. A
    signal here starts no further revert: the hosts left stay in ``changed_hosts()``.
    """

    def ended(outcome: HostOutcome[H, Any], seconds: float, got: object) -> None:
        outcome.revert_seconds = seconds
        if isinstance(got, BaseException):
            outcome.reverted, outcome.revert_error = "revert_failed", one_line(got)
        else:
            outcome.reverted, outcome.revert_error = "reverted", ""

    targets = [o for o in result.outcomes if o.changed]
    try:
        _over(targets, revert, result, lambda o: None, ended, hold=threading.Event(), clock=clock)
    except _Abandon as abandon:
        raise abandon.signal from None
    return result


class _Abandon(Exception):
    """A second signal while running calls were waited for: it goes to the caller as is."""

    def __init__(self, signal: KeyboardInterrupt) -> None:
        super().__init__(str(signal))
        self.signal = signal


def _over(
    outcomes: Sequence[HostOutcome[H, Any]],
    call: Callable[[H], Any],
    result: RolloutResult[H, Any],
    began: Callable[[HostOutcome[H, Any]], None],
    ended: Callable[[HostOutcome[H, Any], float, Any], None],
    *,
    hold: threading.Event,
    stopping: threading.Event | None = None,
    clock: Callable[[], float],
) -> None:
    """Run ``call`` on each outcome's host, at most ``result.policy.max_parallel`` at once.

    Worker threads take the hosts in order while ``hold`` and ``stopping`` are clear;
    ``began`` and ``ended`` run under the result's lock, so no host starts after the one
    whose end set ``hold``. This thread only waits (on an event, in short steps: a signal
    gets in, on Windows too). On a signal it sets ``hold`` and ``stopping``, marks the
    result interrupted and waits until no call runs; it counts the calls in flight rather
    than the threads, since a signal may come while a thread starts.
    """
    queue = deque(outcomes)
    running = 0
    changed = threading.Event()

    def told() -> bool:
        return hold.is_set() or (stopping is not None and stopping.is_set())

    def slot() -> None:
        nonlocal running
        while True:
            with result._lock:
                if not queue or told():
                    return
                outcome = queue.popleft()
                began(outcome)
                running += 1
            try:
                t0 = clock()
                try:
                    got: Any = call(outcome.host)
                except (Exception, KeyboardInterrupt) as exc:
                    got = exc
                with result._lock:
                    ended(outcome, clock() - t0, got)
            finally:
                with result._lock:
                    running -= 1
                changed.set()

    def settled() -> bool:
        with result._lock:
            return running == 0 and (not queue or told())

    def wait_settled() -> None:
        while True:
            changed.clear()
            if settled():
                return
            changed.wait(WAIT_STEP)

    try:
        for _ in range(min(result.policy.max_parallel, len(queue))):
            threading.Thread(target=slot, name="rollout", daemon=True).start()
        wait_settled()
    except KeyboardInterrupt:
        try:
            with result._lock:
                result.interrupted = True
                hold.set()
            if stopping is not None:
                stopping.set()
            wait_settled()  # each call is bounded by its own timeouts
        except KeyboardInterrupt as again:
            raise _Abandon(again) from None


