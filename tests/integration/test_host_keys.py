"""Host keys on real sshd hosts: an unknown key is refused (nothing runs on the host) unless
``trust_new`` (``--trust-new-hosts``) records it; a changed key is refused whatever the option."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from deploytools.config import TimeoutSettings
from deploytools.errors import OperatorError
from deploytools.hosts.ssh import SshHost
from tests.support.sshd import SshTarget

pytestmark = pytest.mark.integration


def ssh_host(
    target: SshTarget, known_hosts: Path, trust_new: bool = False, heard: list[str] | None = None
) -> SshHost:
    conf = target.host_settings().model_copy(update={"known_hosts": str(known_hosts)})
    listen = heard if heard is not None else []
    return SshHost.from_settings(conf, TimeoutSettings(), trust_new=trust_new, notice=listen.append)


def known_line(target: SshTarget) -> str:
    """The fixture's own line for ``target``: its real key."""
    return next(
        line
        for line in Path(target.known_hosts).read_text().splitlines()
        if line.startswith(f"[127.0.0.1]:{target.port} ")
    )


def fingerprint(line: str) -> str:
    """``SHA256:...`` of a known_hosts line, as OpenSSH computes it."""
    out = subprocess.run(
        ["ssh-keygen", "-lf", "-"], input=line, capture_output=True, text=True, check=True
    ).stdout
    return out.split()[1]


@pytest.fixture(scope="module")
def target(ssh_hosts: Callable[[str], SshTarget]) -> SshTarget:
    return ssh_hosts("keys")


def test_an_unknown_key_is_refused_and_nothing_runs_on_the_host(
    target: SshTarget, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    marker = f"{target.root}/ran-{tmp_path.name}"
    host = ssh_host(target, known)
    try:
        with pytest.raises(OperatorError, match="is not in") as caught:
            host.run(["touch", marker])
    finally:
        host.close()
    assert "--trust-new-hosts" in caught.value.fix
    assert not Path(marker).exists()
    assert known.read_text() == ""


def test_trust_new_records_the_key_and_the_next_connection_needs_no_option(
    target: SshTarget, tmp_path: Path
) -> None:
    known = tmp_path / "ssh" / "known_hosts"  # neither the file nor its directory exists yet
    heard: list[str] = []
    host = ssh_host(target, known, trust_new=True, heard=heard)
    try:
        assert host.run(["echo", "hello"]).stdout == "hello\n"
    finally:
        host.close()
    real = known_line(target)
    assert known.read_text() == real + "\n"  # plain, as ssh-keyscan prints it
    assert known.stat().st_mode & 0o777 == 0o600
    (said,) = heard
    assert f"{target.name}: first connection, recorded its ssh-ed25519 key" in said
    assert f"{fingerprint(real)} in {known}" in said

    again = ssh_host(target, known)  # strict again: the recorded key is known now
    try:
        assert again.run(["true"]).ok
    finally:
        again.close()
    assert known.read_text() == real + "\n"


def test_trust_new_appends_below_other_hosts_lines(target: SshTarget, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample")  # no newline
    hosts = [ssh_host(target, known, trust_new=True) for _ in range(4)]
    threads = [threading.Thread(target=h.run, args=(["true"],)) for h in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for host in hosts:
        host.close()
    lines = known.read_text().splitlines()
    assert lines == [
        "other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample",
        known_line(target),
    ]  # one line however many connections learnt it at once


def test_a_changed_key_is_refused_even_with_trust_new(
    ssh_hosts: Callable[[str], SshTarget], target: SshTarget, tmp_path: Path
) -> None:
    other = ssh_hosts("keys-other")
    forged = tmp_path / "known_hosts"  # the other host's key filed under this host's address
    forged.write_text(known_line(other).replace(f":{other.port} ", f":{target.port} ") + "\n")
    before = forged.read_text()
    host = ssh_host(target, forged, trust_new=True)
    try:
        with pytest.raises(OperatorError, match="does not match") as caught:
            host.run(["true"])
    finally:
        host.close()
    assert "someone may be intercepting" in caught.value.problem
    assert forged.read_text() == before


def test_a_known_key_of_another_type_is_a_changed_key(target: SshTarget, tmp_path: Path) -> None:
    """The host offers another type than the one recorded: not a new host, never recorded
    (paramiko refuses it before asking the policy; this keeps it so)."""
    rsa = tmp_path / "rsa"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(rsa)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    keytype, key = rsa.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{target.port} {keytype} {key}\n")
    before = known.read_text()
    host = ssh_host(target, known, trust_new=True)
    try:
        with pytest.raises(OperatorError, match="does not match"):
            host.run(["true"])
    finally:
        host.close()
    assert known.read_text() == before
