"""A step: describe what it would do (``plan``), do it (``run``), and take it back (``undo``).

Steps share one ``RunContext``: settings, the host, the Ui, the journal, and a ``facts``
dict through which an early step hands what it learned (backup id, previous revision, images)
to later steps and to undo.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from deploytools.errors import Interrupted

if TYPE_CHECKING:
    from deploytools.config import EnvironmentSettings
    from deploytools.hosts.base import Host
    from deploytools.journal import Journal
    from deploytools.runtime.base import Runtime
    from deploytools.ui import Ui


@dataclass
class RunContext:
    settings: EnvironmentSettings
    host: Host
    ui: Ui
    journal: Journal
    env_values: dict[str, str]
    release: str = ""
    dry_run: bool = False
    facts: dict[str, Any] = field(default_factory=dict)
    # Set while steps running together are told to stop (one of them was interrupted).
    stopping: threading.Event = field(default_factory=threading.Event)
    _runtime: Runtime | None = None

    def pause(self, seconds: float) -> None:
        """Sleep between two looks; raises ``Interrupted`` at once when told to stop."""
        if self.stopping.wait(max(0.0, seconds)):
            raise Interrupted("told to stop")

    @property
    def runtime(self) -> Runtime:
        """The environment's runtime on this host, made on first use (imports are heavy)."""
        if self._runtime is None:
            from deploytools.runtime import runtime_for

            self._runtime = runtime_for(self.settings, self.host, self.env_values)
        return self._runtime


class Step(Protocol):
    name: str

    def plan(self, ctx: RunContext) -> list[str]:
        """What ``run`` would do, as commands and words; must not change anything."""
        ...

    def run(self, ctx: RunContext) -> dict[str, Any] | None:
        """Do the step; the returned fields go into the journal and the summary."""
        ...


class Undoable(Step, Protocol):
    def undo(self, ctx: RunContext) -> str:
        """Take back what ``run`` did; returns a sentence saying what was undone."""
        ...


class Preparable(Step, Protocol):
    def prepare(self, ctx: RunContext) -> None:
        """Get ready for ``run`` while the step before it runs: imports, nothing else.

        Optional. The pipeline calls it in a thread beside the previous step when that step
        runs alone (it mostly waits on a command), and waits for it before that step ends; a
        failure here is ignored, ``run`` meets it again and says it properly.
        """
        ...


def can_undo(step: Step) -> bool:
    return callable(getattr(step, "undo", None))
