"""Virtualenv argv builders: a release's own environment, made by ``uv`` when the host has
it (seconds), else by the interpreter's ``venv`` and ``pip``."""

from __future__ import annotations

Argv = list[str]

# Prints what names an interpreter for a virtualenv: the real file (a shim or a venv's python
# resolved) and its full version (a rebuilt 3.12.1 differs from 3.12.0).
IDENTITY = "import os, sys; print(os.path.realpath(sys.executable)); print(sys.version)"


def identity(python: str) -> Argv:
    return [python, "-c", IDENTITY]


def uv_version() -> Argv:
    return ["uv", "--version"]


def uv_create(python: str, target: str) -> Argv:
    """A virtualenv on ``python``; never a Python downloaded instead of it."""
    return ["uv", "venv", "--quiet", "--no-python-downloads", "--python", python, target]


def uv_install(target: str, requirements: str) -> Argv:
    """Install ``requirements`` (relative to the cwd) into the virtualenv at ``target``
    (an absolute path: uv reads a bare name as a Python version)."""
    return ["uv", "pip", "install", "--quiet", "--no-progress", "--python", target, "-r",
            requirements]  # fmt: skip


def venv_create(python: str, target: str) -> Argv:
    return [python, "-m", "venv", target]


def pip_install(python: str, requirements: str) -> Argv:
    """``python``: the virtualenv's own interpreter."""
    return [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-input", "-r", requirements]  # fmt: skip
