"""Will a process start with this command line and environment? Asked before anything stops.

The kernel refuses an ``execve`` whose arguments or environment are too big (``E2BIG``,
"Argument list too long"): on Linux no single argument or ``NAME=value`` string may exceed
``MAX_ARG_STRLEN`` (32 pages, 128 KiB), and arguments plus environment share ``ARG_MAX``
(a quarter of the stack limit, 2 MiB by default). A deploy that only found out when it started
the new release had already stopped the old one, which then could not start either (same env
file). So the sizes are checked first: by ``env.validate`` for the env file alone, and by the
process runtime for the exact launch, against the limits of the host that runs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from deploytools.findings import Finding

MAX_ARG_STRLEN = 32 * 4096  # Linux: one argument or one NAME=value, its NUL included
DEFAULT_ARG_MAX = 2 * 1024 * 1024  # Linux with the default 8 MiB stack
POINTER = 8  # each string also costs a pointer in the argv/envp arrays
# What an env file alone may use of ARG_MAX: the rest is for the host's own environment and
# the command line.
ENV_FILE_SHARE = 0.75


@dataclass(frozen=True)
class Limits:
    """One host's exec limits; ``per_string`` None where the OS has no such limit."""

    arg_max: int = DEFAULT_ARG_MAX
    per_string: int | None = MAX_ARG_STRLEN


def limits_for(system: str, arg_max: int) -> Limits:
    """The limits of a host from its ``sys.platform`` and ``ARG_MAX``: Linux caps each string,
    Windows each variable and the command line (32767 characters), the BSDs only the total."""
    if system.startswith("linux"):
        return Limits(arg_max, MAX_ARG_STRLEN)
    if system == "win32":
        return Limits(32767, 32767)
    return Limits(arg_max, None)


def string_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape")) + 1


def launch_problems(
    argv: Sequence[str], env: Mapping[str, str], limits: Limits, *, base_env: int = 0
) -> list[str]:
    """Why ``argv`` with ``env`` (on top of ``base_env`` bytes already in the environment)
    cannot be executed; empty when it can. Names keys and argument positions, never values."""
    problems = []
    if limits.per_string is not None:
        for key, value in env.items():
            size = string_size(f"{key}={value}")
            if size > limits.per_string:
                problems.append(
                    f"environment variable {key} is {size} bytes; no process can receive more "
                    f"than {limits.per_string} in one variable"
                )
        for index, arg in enumerate(argv):
            if string_size(arg) > limits.per_string:
                problems.append(
                    f"argument {index} of the command is {string_size(arg)} bytes; the limit is "
                    f"{limits.per_string}"
                )
    total = base_env + sum(string_size(a) + POINTER for a in argv)
    total += sum(string_size(f"{k}={v}") + POINTER for k, v in env.items())
    if total > limits.arg_max:
        problems.append(
            f"command line and environment take {total} bytes together; the host's limit "
            f"(ARG_MAX) is {limits.arg_max}"
        )
    return problems


def env_file_findings(values: Mapping[str, str], lines: Mapping[str, int]) -> list[Finding]:
    """``env.validate``: values that no process could receive (Linux limits, the strictest
    common ones), each named with its line; the rule is ``too-large``."""
    findings = []
    for key, value in values.items():
        size = string_size(f"{key}={value}")
        if size > MAX_ARG_STRLEN:
            findings.append(
                Finding(
                    "too-large",
                    f"{key} is {size} bytes: no process can receive a variable over "
                    f"{MAX_ARG_STRLEN} bytes (Linux), so the release could not start",
                    f"shorten {key}, or put the data in a file and set {key} to its path",
                    key=key,
                    line=lines.get(key),
                )
            )
    total = sum(string_size(f"{k}={v}") + POINTER for k, v in values.items())
    budget = int(DEFAULT_ARG_MAX * ENV_FILE_SHARE)
    if total > budget:
        findings.append(
            Finding(
                "too-large",
                f"the env file's values take {total} bytes in a process environment; more than "
                f"{budget} leaves no room for the command line and the host's own environment",
                "move large values into files and set their paths instead",
            )
        )
    return findings
