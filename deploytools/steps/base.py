"""A step: describe what it would do (``plan``), do it (``run``), and take it back (``undo``).

Steps share one ``RunContext``: the run's ``Site`` (the control machine, every host, the env
values, the journal), the settings (the release's own for a rollback), the host the step acts
on, and its ``Facts``: what an early step learnt (backup id, previous revision, images) for
later steps and for undo.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from deploytools.errors import Interrupted

if TYPE_CHECKING:
    from deploytools.config import EnvironmentSettings
    from deploytools.hosts.base import Host
    from deploytools.runtime.base import Runtime
    from deploytools.site import Site
    from deploytools.site.journal import Journal
    from deploytools.ui import Ui


@dataclass
class Facts:
    """What steps learnt that later steps, the undo and the release record need.

    Site-wide facts come from steps run once (snapshot, backup, migration, images); a host's
    context has its own copy, and its ``HOST_OWN`` facts are what its own Start learnt."""

    HOST_OWN = ("previous_release", "start_began", "retired")

    sha: str | None = None
    dirty: bool = False
    images: dict[str, str] = field(default_factory=dict)  # service image -> id
    # image -> the digest reference it was pushed as (compose.registry): what hosts pull
    pushed: dict[str, str] = field(default_factory=dict)
    backup: str | None = None  # the deploy's backup (None: skipped)
    safety_backup: str | None = None  # a rollback's, before it changes the database
    revision: str | None = None  # where the database goes (the record's)
    migration_began: bool = False  # previous_revision is known
    previous_revision: str | None = None  # where an undo takes the database back to
    db_action: Literal["restore", "upgrade", "downgrade"] | None = None  # a rollback's
    previous_release: str | None = None  # what the undo brings back (on a host: what ran)
    start_began: float | None = None  # a Celery worker older than this is not this release's
    retired: dict[str, str] = field(default_factory=dict)  # service stopped here -> its release
    flags: dict[str, int] = field(default_factory=dict)  # the flag state kept: flag -> percent
    flags_stage: str | None = None  # the rollout plan's stage it is at

    def learn(self, run: Facts) -> None:
        """Take what the run learnt, keeping this host's own facts."""
        for f in fields(self):
            if f.name not in self.HOST_OWN:
                setattr(self, f.name, getattr(run, f.name))


@dataclass
class RunContext:
    settings: EnvironmentSettings
    host: Host
    ui: Ui
    journal: Journal
    env_values: dict[str, str]
    site: Site
    release: str = ""
    dry_run: bool = False
    facts: Facts = field(default_factory=Facts)
    # Set while steps running together are told to stop (one of them was interrupted).
    stopping: threading.Event = field(default_factory=threading.Event)
    made_with: str = ""  # for a release's own context: whose config and compose files
    # Directories a dry run wrote to read a release's config; removed when its plan is shown.
    scratch: list[tuple[Host, str]] = field(default_factory=list)  # on every host of the run
    _runtime: Runtime | None = None
    _origin: RunContext | None = None  # the run's own context, for one of a release
    _releases: dict[str, RunContext] = field(default_factory=dict)
    _on_hosts: dict[str, RunContext] = field(default_factory=dict)  # shared by the run's hosts

    @property
    def host_names(self) -> list[str]:
        """The hosts this run acts on: the site's, the primary first (``--hosts`` narrows)."""
        return self.site.targets

    def on_host(self, name: str) -> RunContext:
        """This run on host ``name``: its own runtime and facts (a copy of the run's so far),
        the same settings, journal and release. The primary's is this context itself."""
        host = self.site.host(name)
        if host is self.host:
            return self
        if self._origin is not None:  # a release's: its compose files placed on that host
            return self._origin.on_host(name).for_release(self.release)
        if name not in self._on_hosts:  # made once: its undo needs what its steps learnt
            self._on_hosts[name] = replace(
                self,
                host=host,
                env_values=self.site.values_for(name),
                facts=replace(self.facts),
                _runtime=None,
                _origin=None,
                _releases={},
            )
        on = self._on_hosts[name]
        # What the run learnt since (the release's tag, the backup): the host's own facts
        # (the release it replaced, when its start began) stay its own.
        on.release = self.release
        on.facts.learn(self.facts)
        return on

    @property
    def services(self) -> list[str] | None:
        """The services this context's host runs: those whose ``roles`` it has (a service
        without roles runs everywhere); None when that is every service."""
        if not self.settings.hosts:
            return None
        return self.settings.services_on(self.host.name, self.runtime.services())

    @property
    def control(self) -> Host:
        """The machine deploytools runs on: the git checkout, local builds."""
        return self.site.control

    def pause(self, seconds: float) -> None:
        """Sleep between two looks; raises ``Interrupted`` at once when told to stop."""
        if self.stopping.wait(max(0.0, seconds)):
            raise Interrupted("told to stop")

    def for_release(self, tag: str) -> RunContext:
        """This run as release ``tag`` was made: its own config and compose files
        (``deploytools.releaseconfig``), the same host, env file, journal and facts.

        Asked before anything stops, so that a commit that is gone is said while nothing has
        changed; a dry run writes the compose files where it removes them afterwards.
        """
        origin = self._origin or self
        if tag not in self._releases:
            from deploytools.releaseconfig import placed_settings
            from deploytools.targets import state_dir

            where = None
            if self.dry_run:
                where = f"{state_dir(origin.settings, self.host)}/plan-{uuid.uuid4().hex[:12]}"
                self.scratch.append((self.host, where))
            config, settings = placed_settings(
                self.control,
                origin.settings, tag, self.journal.releases(), self.host, directory=where
            )
            # No recorded commit: today's config, so today's runtime serves.
            runtime = origin._runtime if config.sha is None else None
            self._releases[tag] = replace(
                origin, settings=settings, release=tag, made_with=config.describe(),
                _runtime=runtime, _origin=origin,
            )  # fmt: skip
        return self._releases[tag]

    @property
    def runtime(self) -> Runtime:
        """The environment's runtime on this host, made on first use (imports are heavy). The
        site's release archives are its: a process release's archive and wheels are made once
        per run, whichever host asks first, and the others get the same."""
        if self._runtime is None:
            from deploytools.runtime import runtime_for

            self._runtime = runtime_for(
                self.settings, self.host, self.env_values,
                control=self.control, archives=self.site.archives,
            )  # fmt: skip
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
