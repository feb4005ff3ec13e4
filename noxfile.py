"""nox sessions: thin wrappers; the work lives in deploytools/ and tests/.

Sessions run in the environment nox itself runs in (``venv_backend="none"``): install once with
``pip install -e '.[test]'``, then every session starts at once and needs no network.
"""

from __future__ import annotations

import os
import sys

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
PY = sys.executable


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff, and the portability rule (no shell=True, pty, fcntl, os.fork outside platform.py)."""
    session.run(PY, "-m", "ruff", "check", ".")
    session.run(PY, "-m", "deploytools.portability")


@nox.session(venv_backend="none")
def typecheck(session: nox.Session) -> None:
    """mypy, strict on deploytools/."""
    session.run(PY, "-m", "mypy")


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Provision real servers (on Debian as root), then the whole suite on parallel workers
    (DEPLOYTOOLS_TEST_WORKERS, default 2, one per core of the machines here: more made the
    tests' timeouts flaky); posargs go to pytest after these, so ``-n 0`` runs in one process."""
    session.run(PY, "tests/provision.py")
    # Bytecode written once: where PYTHONDONTWRITEBYTECODE is set (as on these machines) each
    # `invoke` the tests start would otherwise compile the modules it imports again (~0.1 s).
    session.run(PY, "-m", "compileall", "-q", "deploytools", "tests", "tasks.py")
    workers = os.environ.get("DEPLOYTOOLS_TEST_WORKERS", "2")
    session.run(PY, "-m", "pytest", "-n", workers, "--dist", "loadfile", *session.posargs)


@nox.session(venv_backend="none")
def verify(session: nox.Session) -> None:
    """The CI gate (``invoke verify``): posargs such as ``--env prod --junit verify.xml``."""
    session.run(PY, "-m", "deploytools.gate", *session.posargs)


@nox.session(venv_backend="none", default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks that print figures (not pass/fail); pass a script name to run one."""
    scripts = session.posargs or ["bench/invoke_list.py"]
    for script in scripts:
        session.run(PY, script)
