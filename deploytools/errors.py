"""Exceptions that carry an operator-facing message and a fix.

Tasks turn ``OperatorError`` into one clear line and exit code 2 (bad input, nothing changed)
and ``DeployFailure`` into exit code 1 (the world said no); anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class DeployToolsError(Exception):
    """Base class: ``problem`` says what is wrong, ``fix`` how to put it right."""

    exit_code = 1

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}\n  fix: {self.fix}" if self.fix else self.problem


class OperatorError(DeployToolsError):
    """Bad input (config, arguments, env file): reported before anything changes."""

    exit_code = 2


class HostKeyError(OperatorError):
    """A host's SSH key is not in known_hosts, or not the one recorded there: refused before
    anything runs on it."""


class DeployFailure(DeployToolsError):
    """A step failed against the real world (a command, a probe, a server)."""


class RolloutHalted(DeployFailure):
    """A rollout exceeded its failure budget under ``on_failure = "halt"``: the hosts already
    switched stay on the new release, so nothing before them (the migration) is undone."""


class CommandError(DeployFailure):
    """A command run on a host exited non-zero or timed out."""

    def __init__(
        self, argv: list[str], returncode: int | None, output: str, host: str = "local"
    ) -> None:
        shown = " ".join(argv[:4]) + (" ..." if len(argv) > 4 else "")
        status = "timed out" if returncode is None else f"exited {returncode}"
        tail = "\n".join(output.strip().splitlines()[-15:])
        super().__init__(f"`{shown}` on {host} {status}" + (f":\n{tail}" if tail else ""))
        self.argv = argv
        self.returncode = returncode
        self.output = output
        self.host = host


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a pipeline; also raised in the steps running beside the one
    the signal interrupted, when they next look (``RunContext.pause``)."""


def one_line(exc: BaseException) -> str:
    """An exception as one line for a message or the journal: our own errors as they put it,
    anything else with its type (a bare ``KeyError()`` is its type alone)."""
    if isinstance(exc, DeployToolsError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
