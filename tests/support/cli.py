"""A throw-away copy of the project (tasks.py + config/) and the real invoke CLI run in it.

The copy lets a test break config and env files freely; deploytools itself is imported from
this checkout through PYTHONPATH, so the code under test is the code in the working tree.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 60.0


@dataclass(frozen=True)
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class TempProject:
    def __init__(self, path: Path, *, example: bool = True) -> None:
        """``example=False``: ``tasks.py`` alone, for a project of the test's own making."""
        self.path = path
        shutil.copy2(ROOT / "tasks.py", path / "tasks.py")
        if not example:
            return
        shutil.copytree(ROOT / "config", path / "config", ignore=shutil.ignore_patterns("*.env"))
        shutil.copytree(
            ROOT / "example/migrations",
            path / "example/migrations",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        shutil.copy2(ROOT / "example/alembic.ini", path / "example/alembic.ini")

    def file(self, relative: str) -> Path:
        return self.path / relative

    def write_env(self, env: str, text: str | bytes, mode: int = 0o600) -> Path:
        path = self.file(f"config/{env}.env")
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        path.chmod(mode)
        return path

    def invoke(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = CLI_TIMEOUT,
    ) -> Run:
        """``python -m invoke ARGS`` in the project (or ``cwd``), with a clean INVOKE_* env."""
        argv = [sys.executable, "-m", "invoke", *args]
        proc = subprocess.run(
            argv,
            cwd=cwd or self.path,
            env=self.environ(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Run(argv, proc.returncode, proc.stdout, proc.stderr)

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """``python -m invoke ARGS`` in the background (for signals and concurrent runs).

        With SIGINT and SIGTERM at their defaults, whatever this test process inherited: a
        background job of a script (CI, ``nohup``) starts with SIGINT ignored, and a Python
        started so keeps ignoring it, so a test's Ctrl-C would never arrive.
        """
        return subprocess.Popen(
            [sys.executable, "-m", "invoke", *args],
            cwd=self.path,
            env=self.environ(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_signals,
        )

    @staticmethod
    def environ(env: dict[str, str] | None = None) -> dict[str, str]:
        """The CLI's environment: this checkout importable, no INVOKE_* leaking in, no colour."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_")}
        # Wide enough that no message wraps: tests read what is said, not how it is laid out
        # (a test of the layout passes its own COLUMNS).
        environ.update(PYTHONPATH=str(ROOT), COLUMNS="1000", NO_COLOR="1")
        environ.update(env or {})
        return environ

    def snapshot(self) -> dict[str, tuple[bytes, int]]:
        """Every file's bytes and mode, to prove that a refused command changed nothing."""
        return {
            str(p.relative_to(self.path)): (p.read_bytes(), p.stat().st_mode)
            for p in sorted(self.path.rglob("*"))
            if p.is_file() and ".git" not in p.parts and "__pycache__" not in p.parts
        }


def bootstrap(project: TempProject, *args: str) -> Run:
    """``init`` in a project with no ``tasks.py`` yet (``invoke`` has nothing to load there)."""
    argv = [sys.executable, "-m", "deploytools.tasks", "init", *args]
    proc = subprocess.run(
        argv,
        cwd=project.path,
        env=project.environ(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    return Run(argv, proc.returncode, proc.stdout, proc.stderr)


def _default_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
