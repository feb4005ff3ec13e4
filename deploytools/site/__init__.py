"""A ``Site``: one task's world, built once per run and handed to everything the task does.

It holds the environment's settings, the env file's values (read once, through the redactor
so that every secret in them is masked wherever the run prints or journals), the control
machine (where deploytools runs: the git checkout, local builds), the primary host (the lock,
the journal, backups and migrations) and every host of the environment, each connected on
first use and closed when the site is. Code below the tasks asks the site for a host instead
of building one, so a test can hand it in-memory hosts (``deploytools.testing``) and a run
opens each SSH connection once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from deploytools import targets
from deploytools.codetree import Archives
from deploytools.errors import DeployToolsError, OperatorError
from deploytools.hosts.base import Host
from deploytools.hosts.local import LocalHost

if TYPE_CHECKING:
    from deploytools.config import EnvironmentSettings, HostSettings
    from deploytools.runtime.base import Runtime
    from deploytools.site.journal import Journal
    from deploytools.site.lock import DeployLock
    from deploytools.ui import Ui

Connect = Callable[["HostSettings"], Host]
T = TypeVar("T")


class Site:
    def __init__(
        self,
        settings: EnvironmentSettings,
        ui: Ui,
        *,
        control: Host | None = None,
        connect: Connect | None = None,
        only: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.only = list(only)  # --hosts: the hosts per-host stages act on (all if empty)
        self.ui = ui
        self.control = control or LocalHost(command_timeout=settings.timeouts.command)
        self._connect = connect or (lambda host: targets.connect(host, settings, ui.info))
        self._hosts: dict[str, Host] = {}
        self._values: dict[str, str] | None = None
        self._journal: Journal | None = None
        self._host_journals: dict[str, Journal | None] = {}  # None: not writable this run
        self._host_journals_lock = threading.Lock()  # hosts rolled out at once write
        self._runtimes: dict[str, Runtime] = {}
        self.archives = Archives()  # a process release's archive, made once for every host

    def __enter__(self) -> Site:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # -- hosts --------------------------------------------------------------------------------

    @property
    def host_names(self) -> list[str]:
        """Every host of the environment, the primary first; the control machine's name when
        the environment runs here."""
        if not self.settings.hosts:
            return [self.control.name]
        first = self.settings.primary_host.name
        return [first, *(h.name for h in self.settings.hosts if h.name != first)]

    def host(self, name: str) -> Host:
        """The host called ``name``, connected on first use (the control machine when the
        environment has no hosts)."""
        if not self.settings.hosts:
            return self.control
        if name not in self._hosts:
            conf = next((h for h in self.settings.hosts if h.name == name), None)
            if conf is None:
                raise KeyError(name)
            if not self._hosts:  # every key file, before the first host is reached
                from deploytools.config import check_key_files

                check_key_files(self.settings)
            self._hosts[name] = self._connect(conf)
        return self._hosts[name]

    @property
    def targets(self) -> list[str]:
        """The hosts per-host stages act on: all of them, or those ``--hosts`` named (in the
        environment's order); a name the environment lacks is refused before anything runs."""
        names = self.host_names
        if not self.only:
            return names
        unknown = [n for n in self.only if n not in names]
        if unknown:
            raise OperatorError(
                f"--hosts names {', '.join(unknown)}, which environment {self.settings.name} "
                "does not have",
                f"name some of: {', '.join(names)}",
            )
        return [n for n in names if n in self.only]

    @property
    def primary(self) -> Host:
        """Where the site's shared state lives: the lock, the journal, backups, migrations."""
        return self.host(self.host_names[0])

    @property
    def hosts(self) -> list[Host]:
        return [self.host(name) for name in self.host_names]

    def on_each(self, names: Sequence[str], work: Callable[[str], T]) -> list[T]:
        """``work(name)`` for every host of ``names`` at once (up to ``rollout.max_parallel``
        threads), the results in their order: a question or a file every host gets."""
        if len(names) <= 1:
            return [work(name) for name in names]
        from concurrent.futures import ThreadPoolExecutor

        workers = min(len(names), self.settings.rollout.max_parallel)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(work, names))

    def runtime(self, host: Host) -> Runtime:
        """The environment's runtime on ``host``, made once per run."""
        if host.name not in self._runtimes:
            from deploytools.runtime import runtime_for

            self._runtimes[host.name] = runtime_for(
                self.settings,
                host,
                self.values_for(host.name),
                control=self.control,
                archives=self.archives,
            )
        return self._runtimes[host.name]

    def close(self) -> None:
        """Close every connection this site opened (one that fails to close is let go) and
        remove the run's release archives."""
        self.archives.close()
        opened, self._hosts = list(self._hosts.values()), {}
        for host in opened:
            close = getattr(host, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):  # a dead connection: nothing left to close
                    close()

    # -- state ----------------------------------------------------------------------------------

    @property
    def env_values(self) -> dict[str, str]:
        """The env file's values, read once; the redactor has learnt its secrets."""
        if self._values is None:
            from deploytools.env.validate import learned_values

            self._values = learned_values(self.settings, self.ui.redact)
        return self._values

    def values_for(self, name: str) -> dict[str, str]:
        """The env values host ``name``'s processes get: the env file's, under the host's own
        ``env`` (a port that differs from host to host)."""
        own = next((h.env for h in self.settings.hosts if h.name == name), {})
        return {**self.env_values, **own} if own else self.env_values

    def env_values_if_any(self) -> dict[str, str]:
        """As ``env_values``, or none when the env file is absent (read-only tasks)."""
        if self._values is None and not self.settings.path(self.settings.env_file).is_file():
            return {}
        return self.env_values

    @property
    def state_dir(self) -> str:
        return targets.state_dir(self.settings, self.primary)

    def flags_file(self, name: str) -> str:
        """The flag state (flagd JSON) that the app's processes on host ``name`` read."""
        return targets.flags_file(self.settings, self.host(name))

    def flags_lock(self) -> DeployLock:
        """The flags lock, on the primary: it expires after ``timeouts.command``, which is
        as long as a writer holds it."""
        from deploytools.site.lock import FLAGS_LOCK, DeployLock

        timeout = self.settings.timeouts.command
        return DeployLock(
            self.primary, self.state_dir, timeout, env=self.settings.name, name=FLAGS_LOCK
        )

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            from deploytools.site.journal import Journal

            self._journal = Journal(self.primary, self.state_dir, self.ui.redact)
        return self._journal

    def host_journal(self, name: str) -> Journal:
        """Host ``name``'s own journal, in its state directory (not connected by this)."""
        from deploytools.site.journal import HOST_JOURNAL_FILE, Journal

        host = self.host(name)
        directory = targets.state_dir(self.settings, host)
        return Journal(host, directory, self.ui.redact, file=HOST_JOURNAL_FILE)

    def journal_on(self, name: str, record: dict[str, Any]) -> None:
        """Write ``record`` (a line of the site's journal) to host ``name``'s own journal too.

        Never fails the run: a host whose journal cannot be written (unreachable, full) is
        said once and not tried again this run; the site's journal has the line anyway."""
        if not self.settings.hosts:  # one machine: the site's journal is its own
            return
        with self._host_journals_lock:
            if name not in self._host_journals:
                self._host_journals[name] = self.host_journal(name)
            journal = self._host_journals[name]
        if journal is None:
            return
        try:
            journal.write(record)
        except (DeployToolsError, OSError) as exc:
            with self._host_journals_lock:
                self._host_journals[name] = None
            said = exc.problem if isinstance(exc, DeployToolsError) else str(exc)
            self.ui.warn(f"{name}: its own journal not written ({said}); the site's has it")

    def history(self) -> list[dict[str, Any]]:
        """The site's journal and every host's own, merged by time (``journal.merged``); a host
        that cannot be read is a warning, and the site's journal still shows."""
        from deploytools.site.journal import merged

        journals = {"site": self.journal.records()}
        self.journal.warn_damaged(self.ui.warn)
        for name in self.host_names if self.settings.hosts else []:
            try:
                journal = self.host_journal(name)
                journals[name] = journal.records()
            except (DeployToolsError, OSError) as exc:
                said = exc.problem if isinstance(exc, DeployToolsError) else str(exc)
                self.ui.warn(f"{name}: its own journal could not be read ({said}): not shown")
                continue
            journal.warn_damaged(self.ui.warn)
        return merged(journals)

    def lock(self) -> DeployLock:
        from deploytools.site.lock import DeployLock

        return DeployLock.of(self.settings, self.primary)
