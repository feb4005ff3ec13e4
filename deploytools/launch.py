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
WINDOWS_LIMIT = 32767  # characters: a command line, or one environment variable
# What an env file alone may use of ARG_MAX: the rest is for the host's own environment and
# the command line.
ENV_FILE_SHARE = 0.75


@dataclass(frozen=True)
class Limits:
    """One host's exec limits: ``arg_max`` bounds the arguments (and, on POSIX, the
    environment with them); ``per_string`` one argument or variable (None: no such limit)."""

    arg_max: int = DEFAULT_ARG_MAX
    per_string: int | None = MAX_ARG_STRLEN
    env_in_total: bool = True


def limits_for(system: str, arg_max: int) -> Limits:
    """The limits of a host from its ``sys.platform`` and ``ARG_MAX``: Linux caps each string,
    the BSDs only the total; Windows caps the command line and each variable at 32767
    characters, and the environment is no part of the command line."""
    if system.startswith("linux"):
        return Limits(arg_max, MAX_ARG_STRLEN)
    if system == "win32":
        return Limits(WINDOWS_LIMIT, WINDOWS_LIMIT, env_in_total=False)
    return Limits(arg_max, None)


def string_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape")) + 1


def environment_size(env: Mapping[str, str]) -> int:
    """What ``env`` takes of ARG_MAX: each NAME=value, its NUL and its pointer."""
    return sum(string_size(f"{k}={v}") + POINTER for k, v in env.items())


def oversized(env: Mapping[str, str], per_string: int | None) -> dict[str, int]:
    """Variables over the per-string limit, with their sizes (never their values)."""
    sizes = {key: string_size(f"{key}={value}") for key, value in env.items()}
    return {key: size for key, size in sizes.items() if per_string and size > per_string}


def launch_problems(
    argv: Sequence[str], env: Mapping[str, str], limits: Limits, *, base_env: int = 0
) -> list[str]:
    """Why ``argv`` with ``env`` (on top of ``base_env`` bytes already in the environment)
    cannot be executed; empty when it can. Names keys and argument positions, never values."""
    problems = [
        f"environment variable {key} is {size} bytes; no process can receive more than "
        f"{limits.per_string} in one variable"
        for key, size in oversized(env, limits.per_string).items()
    ]
    for index, arg in enumerate(argv):
        if limits.per_string and string_size(arg) > limits.per_string:
            problems.append(
                f"argument {index} of the command is {string_size(arg)} bytes; the limit is "
                f"{limits.per_string}"
            )
    total = sum(string_size(a) + POINTER for a in argv)
    if limits.env_in_total:
        total += base_env + environment_size(env)
    if total > limits.arg_max:
        problems.append(
            f"command line and environment take {total} bytes together; the host's limit "
            f"(ARG_MAX) is {limits.arg_max}"
        )
    return problems


def env_file_findings(values: Mapping[str, str], lines: Mapping[str, int]) -> list[Finding]:
    """``env.validate``: values that no process could receive (Linux limits, the strictest
    common ones), each named with its line; the rule is ``too-large``."""
    findings = [
        Finding(
            "too-large",
            f"{key} is {size} bytes: no process can receive a variable over "
            f"{MAX_ARG_STRLEN} bytes (Linux), so the release could not start",
            f"shorten {key}, or put the data in a file and set {key} to its path",
            key=key,
            line=lines.get(key),
        )
        for key, size in oversized(values, MAX_ARG_STRLEN).items()
    ]
    total, budget = environment_size(values), int(DEFAULT_ARG_MAX * ENV_FILE_SHARE)
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
