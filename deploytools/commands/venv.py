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


def uv_install(target: str, requirements: str, wheels: str | None = None) -> Argv:
    """Install ``requirements`` (relative to the cwd) into the virtualenv at ``target``
    (an absolute path: uv reads a bare name as a Python version); from the directory
    ``wheels`` alone when given."""
    return ["uv", "pip", "install", "--quiet", "--no-progress", "--python", target,
            *_offline(wheels), "-r", requirements]  # fmt: skip


def venv_create(python: str, target: str) -> Argv:
    return [python, "-m", "venv", target]


def pip_install(python: str, requirements: str, wheels: str | None = None) -> Argv:
    """``python``: the virtualenv's own interpreter; ``wheels`` as for ``uv_install``."""
    return [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-input", *_offline(wheels), "-r", requirements]  # fmt: skip


def pip_wheel(python: str, requirements: str, out: str) -> Argv:
    """Wheels of ``requirements`` and of all they need into ``out`` (sdists built: ``pip
    download`` would leave them unbuilt), made by ``python``, whose platform they are for."""
    return [python, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
            "--no-input", "--no-color", "-r", requirements, "-w", out]  # fmt: skip


# Prints what a wheel made by an interpreter needs of the one installing it, as JSON: its
# implementation, minor version, platform, and C library (a manylinux wheel needs glibc).
PLATFORM = (
    "import json, platform, sys, sysconfig; print(json.dumps({'python': '%s %d.%d' % "
    "(sys.implementation.name, *sys.version_info[:2]), 'platform': sysconfig.get_platform(),"
    " 'libc': ' '.join(platform.libc_ver()).strip()}))"
)


def platform_of(python: str) -> Argv:
    return [python, "-c", PLATFORM]


def _offline(wheels: str | None) -> Argv:
    return [] if wheels is None else ["--no-index", "--find-links", wheels]
