"""Ctrl-C, SIGTERM and SIGHUP during a run: never lost, never in the middle of an undo.

One ``Interrupts`` guard per process. A task installs it for its whole run; the pipeline then
says, region by region, what a signal may do there:

- ``raising()``: a step's work. The signal raises ``Interrupted`` at once, so that a command
  or a wait stops; later signals no longer raise (the step is unwinding). Python may run the
  handler inside a finalizer (a ``Popen.__del__`` during garbage collection), which would only
  print what it raised: the guard keeps it, and the block raises it as it ends, so such a
  signal is late (the step's work ends first), never lost.
- ``deferred()``: the pipeline's own bookkeeping (journal lines, between two steps). The signal
  is only recorded; ``raising()`` and ``pending`` take it at the next boundary, so a signal
  between two steps is never lost and never tears a journal line.
- ``shielded()``: the undo. A first signal there is answered with a warning and the undo goes
  on (it is bounded by its own timeouts); the next one raises ``Abandoned``, and the pipeline
  says and journals what it leaves undone. So Ctrl-C, Ctrl-C, Ctrl-C abandons an interrupted
  run's undo; one more Ctrl-C never does.

Signal handlers run in the main thread only; in any other thread (or on a platform without
the signal) the guard leaves things as they are. A signal that the parent set to be ignored
(SIGHUP under ``nohup``, SIGINT in a background job of a script) stays ignored.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from enum import Enum
from types import FrameType
from typing import Any

from deploytools.errors import Interrupted

NAMES: dict[int, str] = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
if hasattr(signal, "SIGHUP"):  # POSIX: a closed terminal or SSH session
    NAMES[signal.SIGHUP] = "SIGHUP"
if hasattr(signal, "SIGBREAK"):  # Windows: Ctrl-Break
    NAMES[signal.SIGBREAK] = "SIGBREAK"


class Abandoned(Interrupted):
    """Signalled again during an undo: the undo stops where it is."""


class Mode(Enum):
    RAISE = "raise"
    DEFER = "defer"
    SHIELD = "shield"


class Interrupts:
    """The process's signal guard (see the module docstring); ``warn`` tells the operator."""

    def __init__(self) -> None:
        self.mode = Mode.RAISE
        self.stopping = False  # an interrupt was raised, or an undo began
        self.pending: str | None = None  # recorded while deferred, not yet taken
        self.lost: str | None = None  # raised inside a finalizer, which swallowed it
        self.hits = 0  # signals since the run began to stop
        self.warn: Callable[[str], None] = lambda text: print(text, file=sys.stderr)
        self._depth = 0
        self._previous: dict[int, Any] = {}
        self._unraisable = sys.unraisablehook

    # -- installing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Handle the signals while the block runs (re-entrant); restore the old handlers."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        if self._depth == 0:
            self.reset()
            for signum in NAMES:
                previous = signal.getsignal(signum)
                if previous is signal.SIG_IGN:  # nohup (SIGHUP), a background job (SIGINT)
                    continue
                self._previous[signum] = previous
                signal.signal(signum, self._handle)
            self._unraisable, sys.unraisablehook = sys.unraisablehook, self._swallowed
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0:
                for signum, previous in self._previous.items():
                    signal.signal(signum, previous)
                self._previous.clear()
                sys.unraisablehook = self._unraisable
                self.reset()

    def reset(self) -> None:
        """A new run: nothing pending, nothing counted."""
        self.mode, self.stopping, self.pending, self.hits = Mode.RAISE, False, None, 0
        self.lost = None

    # -- regions ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def raising(self) -> Iterator[None]:
        """A signal raises ``Interrupted`` in this block; one recorded before raises on entry,
        one a finalizer swallowed on exit."""
        with self._mode(Mode.RAISE):
            self.take()
            try:
                yield
            except BaseException:
                self.lost = None  # the block ends on an error all the same
                raise
        if self.lost is not None:
            name, self.lost = self.lost, None
            raise Interrupted(name)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A signal in this block is only recorded (``pending``)."""
        with self._mode(Mode.DEFER):
            yield

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A few statements a signal must not split (a lock taken and noted as held): inside a
        step's work, the signal is raised once they are done."""
        with self._mode(Mode.DEFER):
            yield
        if self.mode is Mode.RAISE and self.pending is not None:
            self.take()

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """The undo: a first signal is answered, the next raises ``Abandoned``."""
        self.stopping = True
        with self._mode(Mode.SHIELD):
            self._abandon_if_asked()
            yield

    def take(self) -> None:
        """Raise for a signal recorded while deferred (``Interrupted``, once) or for one
        that asked to abandon (``Abandoned``)."""
        self._abandon_if_asked()
        if self.pending is not None:
            name, self.pending = self.pending, None
            self._stop()
            raise Interrupted(name)

    def defer(self, signal_: BaseException) -> None:
        """Hand a signal that stopped nothing (what it interrupted ended well all the same)
        to the next ``raising()``, so that it is not lost."""
        self.pending = str(signal_) or "signal"

    @contextlib.contextmanager
    def _mode(self, mode: Mode) -> Iterator[None]:
        previous, self.mode = self.mode, mode
        try:
            yield
        finally:
            self.mode = previous

    def _stop(self) -> None:
        """From now on signals count towards abandoning; none raises in the unwinding."""
        self.stopping = True
        if self.mode is Mode.RAISE:
            self.mode = Mode.DEFER

    def _abandon_if_asked(self) -> None:
        if self.hits >= 2:
            raise Abandoned("signalled again while stopping")

    # -- the handlers -------------------------------------------------------------------------

    def _swallowed(self, unraisable: sys.UnraisableHookArgs) -> None:
        """``sys.unraisablehook``: an ``Interrupted`` our handler raised inside a finalizer
        is kept for ``raising()``, not printed as a traceback; anything else as before."""
        main = threading.current_thread() is threading.main_thread()
        if main and isinstance(unraisable.exc_value, Interrupted):
            self.lost = str(unraisable.exc_value) or "signal"
            return
        self._unraisable(unraisable)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = NAMES.get(signum, f"signal {signum}")
        if not self.stopping and self.pending is None:
            if self.mode is Mode.RAISE:
                self._stop()
                raise Interrupted(name)
            self.pending = name  # taken at the next boundary
            return
        self.hits += 1
        if self.hits == 1:
            self.warn(
                f"{name}: stopping cleanly first (the undo and the lock release are bounded "
                "in time); signal once more to abandon that"
            )
        elif self.mode in (Mode.SHIELD, Mode.RAISE):
            raise Abandoned(name)


INTERRUPTS = Interrupts()
