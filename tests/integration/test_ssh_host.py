"""The ``Host`` contract, run against ``LocalHost`` and against ``SshHost`` on a real sshd.

One test body per behaviour, parametrized over both hosts: steps must not be able to tell
which one they run on. The simulated SSH host is this machine, so a test may look at its
files and processes directly to check what the host did.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import secrets
import signal
import stat
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploytools.errors import CommandError, DeployFailure, OperatorError
from deploytools.hosts.base import Host
from deploytools.hosts.local import LocalHost
from deploytools.hosts.ssh import SshHost
from tests.support.cmdlines import watch_cmdlines
from tests.support.procs import free_port
from tests.support.sshd import SshTarget, frozen_sessions

SSH = pytest.param("ssh", marks=pytest.mark.integration)


def ssh_host(
    target: SshTarget, known_hosts: str | None = None, command_timeout: float = 600
) -> SshHost:
    return SshHost(
        target.name,
        target.address,
        port=target.port,
        user=target.user,
        key_file=target.key_file,
        known_hosts=known_hosts or target.known_hosts,
        connect_timeout=10,
        command_timeout=command_timeout,
    )


@pytest.fixture(scope="module")
def contract_target(ssh_hosts: Callable[[str], SshTarget]) -> SshTarget:
    return ssh_hosts("contract")


@pytest.fixture(scope="module")
def remote(contract_target: SshTarget) -> Iterator[SshHost]:
    host = ssh_host(contract_target)
    yield host
    host.close()


@pytest.fixture(params=["local", SSH])
def host(request: pytest.FixtureRequest) -> Host:
    if request.param == "local":
        return LocalHost()
    remote: Host = request.getfixturevalue("remote")
    return remote


@pytest.fixture
def workdir(request: pytest.FixtureRequest, host: Host, tmp_path: Path) -> str:
    """A fresh directory on ``host`` (inside the simulated host's deploy root for SSH)."""
    if isinstance(host, LocalHost):
        return str(tmp_path)
    target: SshTarget = request.getfixturevalue("contract_target")
    return tempfile.mkdtemp(dir=target.root)


def test_run_passes_argv_env_cwd_and_stdin_verbatim(host: Host, workdir: str) -> None:
    script = 'printf "%s|%s|%s|%s" "$GREETING" "$(pwd)" "$(cat)" "$1"'
    result = host.run(
        ["sh", "-c", script, "sh", "it's $HOME; `x`"],
        env={"GREETING": "hello 'world' $USER"},
        cwd=workdir,
        stdin="line one\nline two",
    )
    assert result.ok
    assert result.stdout == (
        f"hello 'world' $USER|{os.path.realpath(workdir)}|line one\nline two|it's $HOME; `x`"
    )
    assert result.argv[:2] == ["sh", "-c"]


TRICKY = "p\"a\\s's ${HOME} `id` wörd\t-end "  # every character a shell or JSON would touch


def test_secret_env_reaches_the_command_and_stdin_still_flows(host: Host) -> None:
    script = 'printf "%s|%s|%s|%s" "$SECRET" "$OTHER" "$PLAIN" "$(cat)"'
    result = host.run(
        ["sh", "-c", script],
        env={"PLAIN": "shown"},
        secret_env={"SECRET": TRICKY, "OTHER": ""},
        stdin="line one\nline two",
    )
    assert result.stdout == f"{TRICKY}||shown|line one\nline two"
    assert host.run(["sh", "-c", 'printf %s "$S"'], secret_env={"S": "x"}).stdout == "x"


@pytest.mark.parametrize("value", ["two\nlines", "nul\0byte"])
def test_a_secret_with_a_line_break_or_nul_is_refused_before_anything_runs(
    host: Host, workdir: str, value: str
) -> None:
    marker = f"{workdir}/ran"
    with pytest.raises(OperatorError, match="line break or NUL") as caught:
        host.run(["touch", marker], secret_env={"TOKEN": value})
    assert value not in str(caught.value)
    assert not os.path.exists(marker)


def test_run_large_stdin_and_output_do_not_deadlock(host: Host) -> None:
    data = secrets.token_hex(400_000) + "\n"  # 800 kB each way, more than any SSH window
    result = host.run(["cat"], stdin=data, timeout=60)
    assert result.stdout == data


def test_run_without_stdin_sees_end_of_input(host: Host) -> None:
    assert host.run(["cat"], timeout=30).stdout == ""


def test_nonzero_exit_raises_command_error_unless_check_is_off(host: Host) -> None:
    argv = ["sh", "-c", "echo out; echo oops >&2; exit 3"]
    with pytest.raises(CommandError) as caught:
        host.run(argv, env={"API_TOKEN": "s3cr3t-value"})
    assert caught.value.returncode == 3
    assert caught.value.host == host.name
    assert "oops" in str(caught.value)
    assert "s3cr3t-value" not in str(caught.value)

    result = host.run(argv, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "oops\n")


def test_timeout_raises_and_stops_the_command(host: Host) -> None:
    marker = f"{30 + secrets.randbelow(10_000) / 100_000:.5f}"  # a sleep no one else runs
    with pytest.raises(CommandError) as caught:
        host.run(["sleep", marker], timeout=0.5)
    assert caught.value.returncode is None
    assert "timed out" in str(caught.value)
    deadline = time.monotonic() + 10
    while _running(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(f"sleep {marker}"), "the timed-out command is still running"


@pytest.mark.parametrize("kind", ["local", SSH])
def test_a_command_given_no_timeout_is_stopped_by_the_hosts_command_timeout(
    request: pytest.FixtureRequest, kind: str
) -> None:
    """A hanging command never hangs the run: with no ``timeout`` of its own it gets the
    host's ``timeouts.command``."""
    if kind == "local":
        bounded: Host = LocalHost(command_timeout=2)
    else:
        bounded = ssh_host(request.getfixturevalue("contract_target"), command_timeout=2)
    marker = f"{30 + secrets.randbelow(10_000) / 100_000:.5f}"
    try:
        with pytest.raises(CommandError) as caught:  # the sleep itself would end in 30 s
            bounded.run(["sleep", marker])
    finally:
        if isinstance(bounded, SshHost):
            bounded.close()
    assert caught.value.returncode is None and "timed out" in str(caught.value)
    deadline = time.monotonic() + 10
    while _running(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(f"sleep {marker}"), "the timed-out command is still running"


@pytest.mark.parametrize("cwd", [None, "/tmp"])
def test_an_interrupted_command_stops_on_the_host_too(host: Host, cwd: str | None) -> None:
    """Ctrl-C or SIGTERM in deploytools stops the command where it runs, within a grace: an
    undo must not race a remote `docker compose up` that carries on."""
    import signal

    from deploytools.interrupts import INTERRUPTS

    marker = f"{300 + secrets.randbelow(10_000) / 100_000:.5f}"
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    with INTERRUPTS.installed(), INTERRUPTS.raising(), pytest.raises(KeyboardInterrupt):
        timer.start()
        host.run(["sleep", marker], cwd=cwd, timeout=600)
    deadline = time.monotonic() + 10
    while _running(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(f"sleep {marker}"), "the interrupted command is still running"


def test_stream_gives_the_output_in_chunks_and_feed_takes_them(host: Host) -> None:
    """Between two hosts (the controller in the middle) nothing is held whole: 3 MB go
    through in SSH-window-sized pieces, and arrive intact."""
    produce = ["python3", "-c", "import sys; sys.stdout.buffer.write(bytes(range(256)) * 12288)"]
    sizes: list[int] = []

    def counted(chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            sizes.append(len(chunk))
            yield chunk

    with host.stream(produce, timeout=60) as chunks:
        done = host.feed(["sha256sum"], counted(chunks), timeout=60)
    expected = hashlib.sha256(bytes(range(256)) * 12288).hexdigest()
    assert done.stdout.split()[0] == expected
    assert sum(sizes) == 3 * 2**20 and max(sizes) <= 2**20 and len(sizes) > 3


def test_a_stream_whose_command_fails_raises_on_leaving(host: Host) -> None:
    with pytest.raises(CommandError) as caught:
        with host.stream(["sh", "-c", "echo some; echo broken >&2; exit 4"], timeout=30) as out:
            assert b"".join(out) == b"some\n"
    assert caught.value.returncode == 4 and "broken" in str(caught.value)


def test_a_silent_stream_is_stopped_by_its_timeout(host: Host) -> None:
    marker = f"{30 + secrets.randbelow(10_000) / 100_000:.5f}"
    started = time.monotonic()
    with pytest.raises(CommandError, match="timed out"):
        with host.stream(["sleep", marker], timeout=1) as out:
            list(out)
    assert time.monotonic() - started < 20
    _wait_for(lambda: not _running(f"sleep {marker}"), "the timed-out stream to stop")


def test_feed_stops_the_command_when_its_input_breaks(host: Host, workdir: str) -> None:
    """A cut input never looks like a whole one: the command is stopped, not given EOF."""
    target = f"{workdir}/copy"
    script = "import sys; d = sys.stdin.buffer.read(); open(sys.argv[1], 'wb').write(d)"
    keep = ["python3", "-c", script]

    def broken() -> Iterator[bytes]:
        yield b"half of it"
        time.sleep(0.5)
        raise DeployFailure("the source went away")

    with pytest.raises(DeployFailure, match="the source went away"):
        host.feed([*keep, target], broken(), timeout=30)
    time.sleep(1)
    assert not os.path.exists(target)


def test_feed_with_a_command_that_stops_reading_is_no_hang(host: Host) -> None:
    endless = iter(lambda: b"x" * 65536, b"")
    done = host.feed(["head", "-c", "10"], endless, timeout=30, check=False)
    assert done.stdout == "x" * 10


def test_an_interrupted_feed_stops_the_command_on_the_host_too(host: Host) -> None:
    """Ctrl-C or SIGTERM while a stream is being poured: the receiving command stops there."""
    import signal

    from deploytools.interrupts import INTERRUPTS

    marker = f"{300 + secrets.randbelow(10_000) / 100_000:.5f}"
    endless = iter(lambda: b"x" * 65536, b"")  # never read: the pipe fills, the feeder waits
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    with INTERRUPTS.installed(), INTERRUPTS.raising(), pytest.raises(KeyboardInterrupt):
        timer.start()
        host.feed(["sleep", marker], endless, timeout=600)
    _wait_for(lambda: not _running(f"sleep {marker}"), "the interrupted command to stop", 10)


def _running(pattern: str) -> bool:
    done = subprocess.run(["pgrep", "-f", pattern], capture_output=True, check=False)
    return done.returncode == 0


def test_write_file_is_atomic_and_keeps_the_mode(host: Host, workdir: str) -> None:
    path = f"{workdir}/app.env"
    host.write_file(path, b"A=1\n")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # new files may hold secrets

    host.write_file(path, b"A=2\n", mode=0o640)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    inode = os.stat(path).st_ino

    host.write_file(path, b"A=3\n")
    assert host.read_file(path) == b"A=3\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert os.stat(path).st_ino != inode  # replaced by rename, never rewritten in place
    assert host.listdir(workdir) == ["app.env"]  # no temp file left behind


def test_directories_listing_and_removal(host: Host, workdir: str) -> None:
    nested = f"{workdir}/releases/v1/static"
    host.makedirs(nested, mode=0o750)
    host.makedirs(nested)  # already there: fine
    assert stat.S_IMODE(os.stat(nested).st_mode) == 0o750
    host.write_file(f"{workdir}/releases/b.txt", b"b")
    host.write_file(f"{workdir}/releases/a.txt", b"a")
    assert host.exists(nested)
    assert host.listdir(f"{workdir}/releases") == ["a.txt", "b.txt", "v1"]
    assert host.listdir(f"{workdir}/releases/a.txt") == []
    assert host.listdir(f"{workdir}/missing") == []

    host.remove(f"{workdir}/releases/v1")
    host.remove(f"{workdir}/releases/a.txt")
    host.remove(f"{workdir}/never-was")
    assert host.listdir(f"{workdir}/releases") == ["b.txt"]
    assert not host.exists(f"{workdir}/releases/v1")
    with pytest.raises(FileExistsError):
        host.makedirs(f"{workdir}/releases/b.txt")
    with pytest.raises(NotADirectoryError):
        host.makedirs(f"{workdir}/releases/b.txt/sub")


def test_create_dir_is_exclusive(host: Host, workdir: str) -> None:
    assert host.create_dir(f"{workdir}/lock") is True
    assert host.create_dir(f"{workdir}/lock") is False
    assert host.exists(f"{workdir}/lock")


def test_append_file_creates_private_and_appends_from_two_writers(host: Host, workdir: str) -> None:
    path = f"{workdir}/journal.jsonl"
    host.append_file(path, b"one\n")
    mode = host.run(["stat", "-c", "%a", path]).stdout.strip()
    # a second writer (another process) appends between our writes: O_APPEND keeps both
    host.run(["sh", "-c", 'printf "two\\n" >> "$0"', path])
    host.append_file(path, b"three\n")
    assert host.read_file(path) == b"one\ntwo\nthree\n"
    assert mode == "600"


def test_link_dir_points_at_the_target(host: Host, workdir: str) -> None:
    host.makedirs(f"{workdir}/shared")
    host.write_file(f"{workdir}/shared/data", b"x")
    host.link_dir(f"{workdir}/shared", f"{workdir}/release-var")
    assert host.read_file(f"{workdir}/release-var/data") == b"x"
    host.remove(f"{workdir}/release-var")
    assert host.read_file(f"{workdir}/shared/data") == b"x"


def test_read_missing_file_raises_file_not_found(host: Host, workdir: str) -> None:
    with pytest.raises(FileNotFoundError):
        host.read_file(f"{workdir}/nope")


def test_forward_reaches_a_loopback_server_even_after_a_refusal(host: Host) -> None:
    port = free_port()
    with host.forward(port) as local_port:
        assert _fetch(local_port) is None  # nothing listens yet: this connection fails only
        with _http_server(port, b"hello through the tunnel"):
            assert _fetch(local_port) == b"hello through the tunnel"
            assert _fetch(local_port) == b"hello through the tunnel"


def _fetch(port: int, timeout: float = 10) -> bytes | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as response:
            body: bytes = response.read()
            return body
    except OSError:
        return None


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _http_server(port: int, body: bytes) -> Iterator[None]:
    """A tiny HTTP server on 127.0.0.1:``port`` in a thread, for the length of a ``with``."""
    handler = type("Handler", (_Handler,), {"body": body})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


# -- SSH only: host keys ------------------------------------------------------------------------


@pytest.mark.integration
def test_unknown_host_key_is_refused_with_a_fix(contract_target: SshTarget, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = ssh_host(contract_target, known_hosts=str(empty))
    try:
        with pytest.raises(OperatorError) as caught:
            host.run(["true"])
    finally:
        host.close()
    message = str(caught.value)
    assert contract_target.name in message
    assert str(empty) in message
    assert f"ssh-keyscan -p {contract_target.port} 127.0.0.1 >> {empty}" in message


@pytest.mark.integration
def test_changed_host_key_is_refused(
    ssh_hosts: Callable[[str], SshTarget], contract_target: SshTarget, tmp_path: Path
) -> None:
    other = ssh_hosts("contract-other")
    other_line = next(
        line
        for line in Path(other.known_hosts).read_text().splitlines()
        if line.startswith(f"[127.0.0.1]:{other.port} ")
    )
    forged = tmp_path / "known_hosts"  # the other host's key filed under this host's address
    forged.write_text(other_line.replace(f":{other.port} ", f":{contract_target.port} ") + "\n")
    host = ssh_host(contract_target, known_hosts=str(forged))
    try:
        with pytest.raises(OperatorError, match="does not match") as caught:
            host.exists("/")
    finally:
        host.close()
    port = contract_target.port
    assert "SHA256:" in caught.value.problem  # the key it got, to compare with the host's own
    assert caught.value.fix.endswith(  # the old line goes, the new key comes in
        f"replace the old key: ssh-keygen -R '[127.0.0.1]:{port}' -f {forged}"
        f" && ssh-keyscan -p {port} 127.0.0.1 >> {forged}"
    )


@pytest.mark.integration
def test_missing_known_hosts_file_is_an_operator_error(
    contract_target: SshTarget, tmp_path: Path
) -> None:
    host = ssh_host(contract_target, known_hosts=str(tmp_path / "absent"))
    with pytest.raises(OperatorError, match="does not exist"):
        host.run(["true"])


@pytest.mark.integration
def test_unreachable_host_is_a_deploy_failure(contract_target: SshTarget) -> None:
    host = SshHost("gone", "127.0.0.1", port=free_port(), known_hosts=contract_target.known_hosts)
    with pytest.raises(DeployFailure, match=r"cannot connect to gone \(.*127\.0\.0\.1:"):
        host.run(["true"])


@pytest.mark.integration
def test_reconnects_after_close(remote: SshHost) -> None:
    remote.close()
    assert remote.run(["echo", "again"]).stdout == "again\n"
    assert remote.exists("/")


# -- SSH only: secrets never on a command line ---------------------------------------------------


@pytest.mark.integration
def test_secret_env_never_shows_on_a_remote_command_line(remote: SshHost) -> None:
    secret = TRICKY + secrets.token_hex(4)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    script = 'sleep 0.5; printf %s "$TOKEN" | sha256sum'
    with watch_cmdlines([secret]) as seen:
        got = remote.run(["sh", "-c", script], secret_env={"TOKEN": secret}, timeout=30)
        assert seen.lines == [] and seen.passes > 10
        # the control: a value in env= is on `timeout`'s command line while the command runs
        remote.run(["sleep", "0.5"], env={"TOKEN": secret}, timeout=30)
    assert got.stdout.split()[0] == digest  # the command did get the secret
    assert any("TOKEN=" in line for line in seen.lines)


# -- SSH only: a stalled connection ------------------------------------------------------------

STALL_TIMEOUT = 4.0  # timeouts.command of the hosts below: keepalive every 2 s, 2 s to answer
MARGIN = 3.0  # scheduling on a loaded machine


@pytest.fixture
def stalling(ssh_hosts: Callable[[str], SshTarget]) -> Iterator[tuple[SshTarget, SshHost]]:
    """A host of its own (a stall must not touch the other tests' connections), with a short
    command timeout; its remote commands are stopped in teardown."""
    target = ssh_hosts("stall")
    host = ssh_host(target, command_timeout=STALL_TIMEOUT)
    try:
        yield target, host
    finally:
        host.close()


def _in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def _assert_stopped_answering(
    thread: threading.Thread, errors: list[BaseException], frozen_at: float, name: str
) -> None:
    thread.join(STALL_TIMEOUT + MARGIN)
    assert not thread.is_alive(), f"still waiting {STALL_TIMEOUT + MARGIN}s after the stall"
    assert time.monotonic() - frozen_at < STALL_TIMEOUT + MARGIN
    assert len(errors) == 1 and isinstance(errors[0], DeployFailure), errors
    assert f"the SSH connection to {name} (" in errors[0].problem
    assert "stopped answering" in errors[0].problem


@pytest.mark.integration
@pytest.mark.parametrize("moment", ["while it runs", "as it starts"])
def test_a_stalled_connection_ends_a_command_within_the_command_timeout(
    stalling: tuple[SshTarget, SshHost], moment: str
) -> None:
    target, host = stalling
    marker = f"{300 + secrets.randbelow(10_000) / 100_000:.5f}"  # a sleep no one else runs
    host.run(["true"])  # connected
    go = threading.Event()

    def sleep_when_told() -> None:
        go.wait(30)
        host.run(["sleep", marker], timeout=600)  # its own time limit is far away

    thread, errors = _in_thread(sleep_when_told)
    try:
        if moment == "while it runs":
            go.set()
            _wait_for(lambda: _running(f"sleep {marker}"), "the remote command to start")
        with frozen_sessions(target.port):
            frozen_at = time.monotonic()
            go.set()
            _assert_stopped_answering(thread, errors, frozen_at, target.name)
            assert host.run(["echo", "again"]).stdout == "again\n"  # a new connection
    finally:
        _stop_processes(marker)


@pytest.mark.integration
def test_a_stalled_connection_ends_an_sftp_call_within_the_command_timeout(
    stalling: tuple[SshTarget, SshHost],
) -> None:
    target, host = stalling
    opened, go = threading.Event(), threading.Event()

    def list_when_told() -> None:
        host.exists(target.root)  # this thread's SFTP session opens
        opened.set()
        go.wait(30)
        host.listdir(target.root)  # a request on that open session, which gets no reply

    thread, errors = _in_thread(list_when_told)
    assert opened.wait(20)
    with frozen_sessions(target.port):
        frozen_at = time.monotonic()
        go.set()
        _assert_stopped_answering(thread, errors, frozen_at, target.name)
        assert host.exists(target.root)  # a new connection


@pytest.mark.integration
def test_a_stalled_connection_closes_its_tunnels_within_the_command_timeout(
    stalling: tuple[SshTarget, SshHost],
) -> None:
    target, host = stalling
    port = free_port()
    with _http_server(port, b"through"), host.forward(port) as local_port:
        assert _fetch(local_port) == b"through"
        with frozen_sessions(target.port):
            frozen_at = time.monotonic()
            assert _fetch(local_port, timeout=60) is None
            assert time.monotonic() - frozen_at < STALL_TIMEOUT + MARGIN
            assert _fetch(local_port) == b"through"  # its next client gets a new connection


@pytest.mark.integration
def test_a_silent_command_longer_than_the_keepalive_interval_is_not_a_stall(
    stalling: tuple[SshTarget, SshHost],
) -> None:
    _, host = stalling
    result = host.run(["sh", "-c", "sleep 5; echo done"], timeout=60)  # 2 keepalives answered
    assert result.stdout == "done\n" and result.duration >= 5


def _wait_for(ready: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _stop_processes(marker: str) -> None:
    """Kill, by pid, the processes whose command line holds ``marker`` (a random number that
    only the test's own remote command has: the command and its ``timeout`` wrapper)."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and marker.encode() in argv and argv[0] in (b"sleep", b"timeout"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
