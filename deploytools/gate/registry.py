"""The gate's vocabulary: a check, what it says about one target, and the registry of checks.

A check is registered under its name with the tags of what it needs beyond this machine's
files (``docker``: a Docker client; ``database``: a database server), as nox registers its
sessions: selection by name is data, and the README's list of checks comes from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from deploytools.config import EnvironmentSettings
    from deploytools.gate.project import Project

# could-not-run: the check (or part of it) could not do its work here; it says what it did
# instead. Like a warning it fails the gate only with --strict, and it is never shown as a pass.
Status = Literal["pass", "warn", "fail", "could-not-run"]
SEVERITY: dict[Status, int] = {"pass": 0, "warn": 1, "could-not-run": 2, "fail": 3}


@dataclass(frozen=True)
class Item:
    """One thing a check found about ``target``; ``where`` is the file (and line or key) to open."""

    target: str
    status: Status
    message: str
    where: str = ""


@dataclass(frozen=True)
class Result:
    """A check on one target: the worst of its items, and how long the check took."""

    check: str
    target: str
    items: tuple[Item, ...]
    seconds: float

    @property
    def status(self) -> Status:
        return max((i.status for i in self.items), key=SEVERITY.__getitem__, default="pass")

    def fails(self, strict: bool) -> bool:
        return self.status == "fail" or (strict and self.status != "pass")


# A per-environment check gets the environment's name; a project-wide one gets None.
Run = Callable[["Project", "str | None"], list[Item]]


@dataclass(frozen=True)
class Check:
    name: str
    run: Run
    description: str
    per_environment: bool = True
    needs: frozenset[str] = field(default_factory=frozenset)
    # Which environments it concerns (None: all); the others get no row.
    applies: Callable[[EnvironmentSettings], bool] | None = None


CHECKS: dict[str, Check] = {}


def register(
    name: str,
    *,
    per_environment: bool = True,
    needs: frozenset[str] = frozenset(),
    applies: Callable[[EnvironmentSettings], bool] | None = None,
) -> Callable[[Run], Run]:
    """Add the decorated function to ``CHECKS`` under ``name``; its docstring's first line
    describes it (``--help``, the README)."""

    def add(run: Run) -> Run:
        if name in CHECKS:
            raise ValueError(f"gate check {name!r} registered twice")
        description = (run.__doc__ or name).strip().splitlines()[0]
        CHECKS[name] = Check(name, run, description, per_environment, needs, applies)
        return run

    return add
