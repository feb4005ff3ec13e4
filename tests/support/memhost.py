"""An in-memory ``Host`` for unit tests: files in a dict, commands answered by a callback."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager

from deploytools.errors import CommandError
from deploytools.hosts.base import Result, same_port

Responder = Callable[[list[str]], tuple[int, str]]


class MemoryHost:
    def __init__(self, name: str = "mem", responder: Responder | None = None) -> None:
        self.name = name
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, int] = {}
        self.dirs: set[str] = set()
        self.commands: list[list[str]] = []
        self.links: dict[str, str] = {}
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
