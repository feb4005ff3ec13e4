"""The command line ``SshHost`` hands to the remote POSIX shell, and its import cost."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from deploytools.errors import OperatorError
from deploytools.hosts.ssh import (
    _announced,
    forget_key_hint,
    keyscan_hint,
    remote_command,
    secret_lines,
)

# Every remote command first says its process group, then becomes the command.
ANNOUNCE = """exec sh -c 'echo "deploytools-group $$" >&2 && exec "$@"' sh """


def test_argv_is_quoted_word_for_word() -> None:
    argv = ["printf", "%s\n", "a b", "it's", "$HOME", "`id`", "; rm -rf /"]
    command = remote_command(argv)
    assert command.startswith(ANNOUNCE)
    assert shlex.split(command.removeprefix(ANNOUNCE)) == argv


def test_the_announced_group_is_read_and_taken_out_of_stderr() -> None:
    assert _announced(b"deploytools-group 4321\noops\n") == (4321, b"oops\n")
    assert _announced(b"deploytools-grou") == (None, b"deploytools-grou")  # not all there yet
    assert _announced(b"no announcement\n") == (None, b"no announcement\n")


def test_env_cwd_and_timeout_wrap_the_argv() -> None:
    command = remote_command(
        ["alembic", "upgrade", "head"],
        env={"DATABASE_URL": "postgresql://u:p w@h/db", "A": ""},
        cwd="/srv/app dir",
        timeout=90,
    )
    assert command == (
        f"cd '/srv/app dir' && {ANNOUNCE}timeout -k 5 90 env"
        " 'DATABASE_URL=postgresql://u:p w@h/db' A= alembic upgrade head"
    )


def test_fractional_timeout_is_kept() -> None:
    assert remote_command(["true"], timeout=0.5) == f"{ANNOUNCE}timeout -k 5 0.5 true"


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "A=B", ""])
def test_invalid_env_names_are_refused(name: str) -> None:
    with pytest.raises(OperatorError, match="invalid environment variable name"):
        remote_command(["true"], env={name: "x"})
    with pytest.raises(OperatorError, match="invalid environment variable name"):
        remote_command(["true"], secret_names=[name])


def test_secrets_are_named_on_the_line_and_their_values_go_first_on_stdin() -> None:
    command = remote_command(
        ["psql", "--file=-"], env={"PGOPTIONS": "-c x=1"}, timeout=60, secret_names=["A", "B"]
    )
    assert command == (
        f"{ANNOUNCE}timeout -k 5 60 env 'PGOPTIONS=-c x=1' sh -c"
        """ 'IFS= read -r A && IFS= read -r B && export A B && exec "$@"' sh psql --file=-"""
    )
    assert secret_lines({"A": "it's ${x} \\ wörd ", "B": ""}) == "it's ${x} \\ wörd \n\n".encode()


def test_key_hints_name_the_known_hosts_line_of_the_host() -> None:
    assert forget_key_hint("10.0.0.5", 2222, "/k/known hosts") == (
        "ssh-keygen -R '[10.0.0.5]:2222' -f '/k/known hosts'"
    )
    assert forget_key_hint("web.example", 22, "/k/kh") == "ssh-keygen -R web.example -f /k/kh"
    assert keyscan_hint("10.0.0.5", 2222, "/k/kh") == "ssh-keyscan -p 2222 10.0.0.5 >> /k/kh"


def test_importing_the_module_leaves_fabric_and_paramiko_unloaded() -> None:
    """Heavy imports wait until a host is made, so ``invoke --list`` stays fast."""
    code = "import sys, deploytools.hosts.ssh; print({'fabric', 'paramiko'} & set(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "set()"
