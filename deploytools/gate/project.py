"""The project under the gate, read once before any check runs.

Everything a check could trip over as bad input is read here, in the main thread, so that the
gate refuses it (exit 2, nothing checked) before it starts: the config file, the names given
with ``--env``, and each environment's real env file when there is one (its secrets are taught
to the redactor then, before any check can print a line of it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from deploytools.config import EnvironmentSettings, load_settings, read_deploy_file
from deploytools.configpath import find_config
from deploytools.env.file import EnvDocument
from deploytools.errors import OperatorError
from deploytools.redact import Redactor

T = TypeVar("T")


@dataclass
class Project:
    config: Path
    environments: list[str]
    redactor: Redactor = field(default_factory=Redactor)
    today: date = field(default_factory=date.today)
    _settings: dict[str, EnvironmentSettings | OperatorError] = field(default_factory=dict)
    env_files: dict[str, EnvDocument] = field(default_factory=dict)
    _memo: dict[Hashable, Any] = field(default_factory=dict)
    _memo_locks: dict[Hashable, threading.Lock] = field(default_factory=dict)
    _memo_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def root(self) -> Path:
        """The directory holding ``config/``."""
        return self.config.parent.parent

    def settings(self, env: str) -> EnvironmentSettings:
        """The environment's settings; raises the same ``OperatorError`` every time."""
        found = self._settings[env]
        if isinstance(found, OperatorError):
            raise found
        return found

    def once(self, key: Hashable, make: Callable[[], T]) -> T:
        """``make()``'s value, made once per ``key`` for every check that asks (at the same
        time too: the others wait): environments that render the same migrations' SQL."""
        with self._memo_lock:
            lock = self._memo_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                self._memo[key] = make()
            found: T = self._memo[key]
            return found

    def loaded(self) -> list[EnvironmentSettings]:
        """The selected environments whose config loads."""
        return [s for s in self._settings.values() if not isinstance(s, OperatorError)]

    def shown(self, path: Path) -> str:
        """``path`` relative to the project root when it is inside it."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)


def open_project(config: str | Path, envs: list[str], redactor: Redactor) -> Project:
    """The project of ``config`` with the environments ``envs`` names (every one when empty).

    Raises ``OperatorError`` for a missing config file, an unknown environment or an env file
    that is there but cannot be read."""
    path = find_config(config)
    known = sorted(read_deploy_file(path).environments)
    unknown = [name for name in envs if name not in known]
    if unknown:
        raise OperatorError(
            f"no environment {', '.join(map(repr, unknown))} in {path}",
            f"pass --env with one of: {', '.join(known) or '(none)'}",
        )
    project = Project(path, list(dict.fromkeys(envs)) or known, redactor)
    for env in project.environments:
        try:
            project._settings[env] = load_settings(env, config_path=path)
        except OperatorError as exc:
            project._settings[env] = exc
    for settings in project.loaded():
        if (doc := _real_env_file(settings, project)) is not None:
            project.env_files[settings.name] = doc
    return project


def _real_env_file(settings: EnvironmentSettings, project: Project) -> EnvDocument | None:
    """The environment's env file when it exists (a CI checkout has only the examples), its
    secrets learnt by the redactor; one that exists and cannot be read is bad input."""
    from deploytools.env import file as envfile
    from deploytools.env.validate import learn_all

    path = settings.path(settings.env_file)
    if not path.exists() and not path.is_symlink():
        return None
    shown = project.shown(path)
    fix = f"make {shown} a readable file (or remove it: the gate then checks the example)"
    if not path.is_file():
        raise OperatorError(f"cannot read env file {shown}: not a regular file", fix)
    try:
        doc = envfile.parse(path.read_bytes())
    except OSError as exc:
        raise OperatorError(f"cannot read env file {shown}: {exc.strerror}", fix) from None
    learn_all(project.redactor, doc, settings)
    return doc
