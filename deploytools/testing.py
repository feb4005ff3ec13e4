"""What tests of code built on deploytools need, for ours and for users' own: an in-memory
``Host``, a clock that only moves when slept on, a settings factory and a run context on a
``Site`` of in-memory hosts — as ``fabric.testing`` and httpx's ``MockTransport`` serve theirs.

Unit tests of steps and pipelines use these instead of real hosts; integration tests never do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploytools.errors import CommandError
from deploytools.hosts.base import Host, Result, same_port

if TYPE_CHECKING:
    from deploytools.config import EnvironmentSettings
    from deploytools.steps.base import RunContext
    from deploytools.ui import Ui

Responder = Callable[[list[str]], tuple[int, str]]


class MemoryHost:
    """A ``Host`` whose files are a dict and whose commands a ``responder`` answers (exit code,
    output); every argv it was given is in ``commands``, in order."""

    def __init__(
        self, name: str = "mem", responder: Responder | None = None, *, local: bool = False
    ) -> None:
        self.name = name
        self.local = local
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, int] = {}
        self.dirs: set[str] = set()
        self.commands: list[list[str]] = []
        self.links: dict[str, str] = {}
        self.fed: list[tuple[list[str], bytes]] = []  # ``feed``'s argv and all it was given
        self._responder = responder or (lambda argv: (0, ""))

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        check: bool = True,
        stdin: str | None = None,
    ) -> Result:
        args = list(argv)
        self.commands.append(args)
        code, out = self._responder(args)
        if check and code:
            raise CommandError(args, code, out, self.name)
        return Result(args, code, out, "", 0.0)

    @contextmanager
    def stream(self, argv: Sequence[str], *, timeout: float) -> Iterator[Iterator[bytes]]:
        """The responder's output as one chunk; its failure raised on leaving, as hosts do."""
        args = list(argv)
        self.commands.append(args)
        code, out = self._responder(args)
        yield iter([out.encode()] if out else [])
        if code:
            raise CommandError(args, code, out, self.name)

    def feed(
        self, argv: Sequence[str], chunks: Iterable[bytes], *, timeout: float, check: bool = True
    ) -> Result:
        self.fed.append((list(argv), b"".join(chunks)))
        return self.run(argv, timeout=timeout, check=check)

    def read_file(self, path: str) -> bytes:
        if path not in self.files:  # as LocalHost and SshHost say it
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.files[path]

    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        self.files[path] = data
        self.modes[path] = mode if mode is not None else self.modes.get(path, 0o644)

    def append_file(self, path: str, data: bytes) -> None:
        self.files[path] = self.files.get(path, b"") + data
        self.modes.setdefault(path, 0o600)

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs

    def makedirs(self, path: str, mode: int = 0o755) -> None:
        self.dirs.add(path)

    def create_dir(self, path: str) -> bool:
        if path in self.dirs:
            return False
        self.dirs.add(path)
        return True

    def remove(self, path: str) -> None:
        self.dirs = {d for d in self.dirs if d != path and not d.startswith(path + "/")}
        self.files = {
            f: v for f, v in self.files.items() if not f.startswith(path + "/") and f != path
        }

    def link_dir(self, target: str, link: str) -> None:
        self.links[link] = target
        self.dirs.add(link)

    def listdir(self, path: str) -> list[str]:
        names = {
            p[len(path) + 1 :].split("/")[0]
            for p in (*self.files, *self.dirs)
            if p.startswith(path + "/")
        }
        return sorted(names)

    def forward(self, remote_port: int) -> AbstractContextManager[int]:
        return same_port(remote_port)


class Clock:
    """Monotonic time that moves only when ``sleep`` is called: a wait's timeout is reached at
    once and exactly, and ``sleeps`` says how it polled."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def settings_for(root: Path, **values: Any) -> EnvironmentSettings:
    """A ``process`` environment named ``t`` rooted at ``root`` (env file ``t.env``); ``values``
    are its keys as ``deploy.toml`` would give them, merged over these."""
    from deploytools.config import EnvironmentSettings, deep_merge

    base: dict[str, Any] = {
        "name": "t",
        "env_file": str(root / "t.env"),
        "env_example": str(root / "t.env.example"),
        "runtime": "process",
        "state_dir": str(root / "state"),
        "root": root,
    }
    return EnvironmentSettings.model_validate(deep_merge(base, values))


def run_context(
    settings: EnvironmentSettings,
    host: Host,
    ui: Ui | None = None,
    *,
    env_values: Mapping[str, str] | None = None,
    journal_dir: str = "/s",
    **fields: Any,
) -> RunContext:
    """A step's context on ``host``, which is also the site's control machine and primary;
    ``fields`` are ``RunContext``'s own (release, dry_run, facts, ...)."""
    from deploytools.site import Site
    from deploytools.site.journal import Journal
    from deploytools.steps.base import RunContext
    from deploytools.ui import Ui

    ui = ui or Ui()
    site = Site(settings, ui, control=host)
    journal = Journal(host, journal_dir, ui.redact)
    values = dict(env_values or {})
    return RunContext(settings, host, ui, journal, values, site, **fields)
