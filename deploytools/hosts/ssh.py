"""``SshHost``: a remote POSIX machine over SSH (a Fabric ``Connection``), host keys checked.

Fabric accepts any host key unless told otherwise (fabric#1804), so every connection loads the
configured ``known_hosts`` and refuses keys that are not in it; with ``trust_new`` (the
``--trust-new-hosts`` option) the key of a host that file does not know at all is recorded in
it instead, as OpenSSH's ``StrictHostKeyChecking=accept-new`` does. A changed key is always
refused. Commands go to the remote login
shell as one ``shlex``-quoted string. ``env`` values are set with ``env`` on that command line
(sshd's ``AcceptEnv`` would drop them), where other users of the host can read them in ``ps``;
``secret_env`` values travel on the channel's stdin instead, read by a small ``sh`` preamble
that then ``exec``s the command. Files move over SFTP. A watchdog per connection
(``liveness``) closes a connection whose peer stopped answering, so that no remote wait
outlives ``timeouts.command``. fabric and paramiko are imported only when a host is made (they
cost ~0.2 s to import).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import posixpath
import secrets
import select
import shlex
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import TYPE_CHECKING, Any

from deploytools.errors import CommandError, DeployFailure, HostKeyError, OperatorError
from deploytools.hosts.base import (
    CHUNK,
    COMMAND_TIMEOUT,
    ENV_NAME,
    Result,
    check_secret_env,
    pour,
)
from deploytools.hosts.liveness import Bounds, Watchdog, probe
from deploytools.hosts.tunnel import forward_local

if TYPE_CHECKING:
    from deploytools.config import HostSettings, TimeoutSettings

KILL_GRACE = 5.0  # seconds between the remote timeout's TERM and its KILL
TIMEOUT_EXITS = (124, 137)  # coreutils `timeout`: timed out (TERM), or killed after the grace
NO_EXIT_STATUS = -1  # paramiko's exit status of a channel that closed without reporting one
NEW_FILE_MODE = 0o600  # like LocalHost (mkstemp): a new file may hold secrets
PID_MARK = "deploytools-group "  # the first stderr line of a remote command: its process group


def remote_command(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout: float | None = None,
    secret_names: Sequence[str] = (),
) -> str:
    """The POSIX shell command line that runs ``argv`` with ``env`` in ``cwd``, time-limited.

    ``secret_names`` are the variables whose values come first on stdin (``secret_lines``): only
    their names are on this line. The remote ``timeout`` kills the command itself when time is
    up; closing the channel would leave it running on the host.
    """
    words = [str(a) for a in argv]
    bad = [key for key in (*(env or {}), *secret_names) if not ENV_NAME.fullmatch(key)]
    if bad:
        raise OperatorError(f"invalid environment variable name(s): {', '.join(bad)}")
    if secret_names:
        words = ["sh", "-c", _secrets_preamble(secret_names), "sh", *words]
    if env:
        words = ["env", *(f"{key}={value}" for key, value in env.items()), *words]
    if timeout is not None:
        words = ["timeout", "-k", f"{KILL_GRACE:g}", f"{timeout:g}", *words]
    # sshd starts the command in a session of its own; it says its process group first (one
    # stderr line, taken out again by ``_announced``) and becomes the command, so that an
    # interrupted run can stop the whole group (``SshHost._stop_remote``).
    words = ["sh", "-c", f'echo "{PID_MARK}$$" >&2 && exec "$@"', "sh", *words]
    command = "exec " + shlex.join(words)  # the login shell becomes it: $$ is the session's
    return f"cd {shlex.quote(cwd)} && {command}" if cwd else command


def _announced(err: bytes) -> tuple[int | None, bytes]:
    """The process group the remote command announced, and its stderr without that line."""
    mark = PID_MARK.encode()
    if not err.startswith(mark) or b"\n" not in err:
        return None, err
    line, _, rest = err.partition(b"\n")
    group = line[len(mark) :]
    return (int(group) if group.isdigit() else None), rest


def _secrets_preamble(names: Sequence[str]) -> str:
    """Read one line of stdin per name into the environment, then become the command.

    ``read`` is a builtin (no process, no argv) that consumes exactly its line, so the caller's
    stdin that follows reaches the command untouched.
    """
    reads = " && ".join(f"IFS= read -r {name}" for name in names)
    return f'{reads} && export {" ".join(names)} && exec "$@"'


def secret_lines(secret_env: Mapping[str, str]) -> bytes:
    """What ``_secrets_preamble`` reads: the values in order, one per line."""
    return "".join(f"{value}\n" for value in secret_env.values()).encode()


class SshHost:
    """A remote machine reached over SSH; implements the ``Host`` protocol."""

    local = False

    def __init__(
        self,
        name: str,
        address: str,
        *,
        port: int = 22,
        user: str | None = None,
        key_file: str | None = None,
        known_hosts: str = "~/.ssh/known_hosts",
        connect_timeout: float = 10.0,
        command_timeout: float = COMMAND_TIMEOUT,
        trust_new: bool = False,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        """``trust_new``: record the key of a host ``known_hosts`` has no key for (``notice``
        says so, with its fingerprint; default: a line on stderr)."""
        from fabric import Connection

        _drop_paramiko_logs()
        self.name = name
        self.address = address
        self.port = port
        self.known_hosts = os.path.expanduser(known_hosts)
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.bounds = Bounds.from_timeouts(command_timeout, connect_timeout)
        connect_kwargs: dict[str, Any] = {
            "banner_timeout": connect_timeout,
            "auth_timeout": connect_timeout,
        }
        if key_file:
            connect_kwargs["key_filename"] = [os.path.expanduser(key_file)]
            connect_kwargs["look_for_keys"] = False
        self._conn = Connection(
            address,
            user=user,
            port=port,
            connect_timeout=connect_timeout,
            connect_kwargs=connect_kwargs,
        )
        self.user: str = self._conn.user
        self.trust_new = trust_new
        self.notice = notice or (lambda text: print(text, file=sys.stderr))
        self._conn.client.set_missing_host_key_policy(_unknown_key_policy(self))
        self._watchdog: Watchdog | None = None  # of the open connection
        self._connect_lock = threading.Lock()  # steps that run together share this host
        # One SFTP session per thread: paramiko's SFTPClient is not thread-safe (a reply can
        # go to the wrong waiter).
        self._sftps: dict[int, Any] = {}
        self._sftp_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        host: HostSettings,
        timeouts: TimeoutSettings,
        *,
        trust_new: bool = False,
        notice: Callable[[str], None] | None = None,
    ) -> SshHost:
        return cls(
            host.name,
            host.address,
            port=host.port,
            user=host.user,
            key_file=host.key_file,
            known_hosts=host.known_hosts,
            connect_timeout=timeouts.connect,
            command_timeout=timeouts.command,
            trust_new=trust_new,
            notice=notice,
        )

    def __repr__(self) -> str:
        return f"SshHost({self.name!r}, {self.user}@{self.address}:{self.port})"

    # -- connection ---------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self.name} ({self.user}@{self.address}:{self.port})"

    def _connection(self) -> tuple[Any, Watchdog]:
        """The open SSH transport and its watchdog; connects (known host keys only) if needed."""
        with self._connect_lock:
            if self._watchdog is None or not self._conn.is_connected:
                self._connect()
            assert self._watchdog is not None
            return self._conn.transport, self._watchdog

    def _connect(self) -> None:
        import paramiko

        if self.trust_new and not os.path.exists(self.known_hosts):
            os.makedirs(os.path.dirname(self.known_hosts) or ".", mode=0o700, exist_ok=True)
            os.close(os.open(self.known_hosts, os.O_WRONLY | os.O_CREAT, 0o600))
        if not os.path.isfile(self.known_hosts):
            raise OperatorError(
                f"known_hosts file {self.known_hosts} for host {self.name} does not exist",
                fix=f"create it with the host's key: {self._keyscan_hint()}",
            )
        self._conn.client.load_host_keys(self.known_hosts)
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None
        with self._sftp_lock:
            self._sftps = {}  # they belonged to a connection that is gone
        try:
            self._conn.open()
        except OperatorError:
            self._conn.close()
            raise
        except paramiko.BadHostKeyException as exc:
            self._conn.close()
            raise self.changed_key(exc.key) from None
        except paramiko.AuthenticationException as exc:
            self._conn.close()
            raise OperatorError(
                f"SSH login to {self._where} refused: {exc}",
                fix="check the host's user and key_file in the config, and that the public key"
                " is in the remote user's authorized_keys",
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            why = self._connect_error(exc)
            self._conn.close()
            raise DeployFailure(
                f"cannot connect to {self._where}: {why}",
                fix=f"check that the host is up, that sshd listens on {self.address} port"
                f" {self.port} and that the network allows it",
            ) from None
        self._watchdog = Watchdog(self._conn.transport, self.bounds, self.name)

    def _connect_error(self, exc: BaseException) -> str:
        """What went wrong, in words (paramiko's own are about its internals)."""
        import paramiko

        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
            exc = next(iter(exc.errors.values()), exc)
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused (nothing listens on that port)"
        if isinstance(exc, TimeoutError):
            return f"no answer within {self.connect_timeout:g}s (connect timeout)"
        transport = self._conn.client.get_transport()  # the new one, after a paramiko error
        if isinstance(exc, paramiko.SSHException) and transport and not transport.remote_version:
            return (
                f"no SSH greeting within {self.connect_timeout:g}s: what listens on that port"
                " is not an SSH server, or it is stuck"
            )
        return str(exc) or type(exc).__name__

    def _keyscan_hint(self) -> str:
        return keyscan_hint(self.address, self.port, self.known_hosts)

    def changed_key(self, key: Any) -> HostKeyError:
        """The refusal of a host whose key is not the one ``known_hosts`` has for it."""
        return HostKeyError(
            f"host key of {self._where} does not match {self.known_hosts}: got"
            f" {key.get_name()} {key.fingerprint}; someone may be intercepting",
            fix="if the host was really re-keyed, compare that fingerprint with the host's"
            " own (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on it), then replace"
            f" the old key: {forget_key_hint(self.address, self.port, self.known_hosts)}"
            f" && {self._keyscan_hint()}",
        )

    def _broken(self, watchdog: Watchdog, exc: BaseException | None = None) -> DeployFailure:
        """The error of an operation whose connection froze (the watchdog closed it) or died
        under it, or whose channel alone failed; the next call connects again if need be."""
        if watchdog.stalled:
            return DeployFailure(
                f"the SSH connection to {self._where} stopped answering ({watchdog.stalled});"
                " it was closed",
                fix="check that the host is up and not overloaded or suspended, and the network"
                " in between; the next command connects again",
            )
        detail = f": {exc}" if exc is not None and str(exc) else ""
        if watchdog.transport.is_active():
            return DeployFailure(
                f"an SSH channel to {self._where} failed{detail}",
                fix="check the host's sshd (its log, its MaxSessions); the next command opens"
                " a new channel",
            )
        return DeployFailure(
            f"lost the SSH connection to {self._where}{detail}",
            fix="check that the host and its sshd are up; the next command connects again",
        )

    def close(self) -> None:
        """Close SFTP and the connection; the next call reconnects."""
        with self._sftp_lock:
            for sftp in self._sftps.values():
                sftp.close()
            self._sftps = {}
        if self._watchdog is not None:
            self._watchdog.stop()
        self._conn.close()

    # -- commands -----------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        check: bool = True,
        stdin: str | None = None,
    ) -> Result:

        args = [str(a) for a in argv]
        secret_env = secret_env or {}
        check_secret_env(secret_env)
        timeout = self.command_timeout if timeout is None else timeout
        command = remote_command(args, env, cwd, timeout, secret_names=list(secret_env))
        feed = secret_lines(secret_env) + (stdin or "").encode()
        return self._execute(args, command, [feed] if feed else [], timeout, check)

    def feed(
        self, argv: Sequence[str], chunks: Iterable[bytes], *, timeout: float, check: bool = True
    ) -> Result:
        args = [str(a) for a in argv]
        return self._execute(args, remote_command(args, timeout=timeout), chunks, timeout, check)

    def _execute(
        self,
        args: list[str],
        command: str,
        stdin: Iterable[bytes],
        timeout: float | None,
        check: bool,
    ) -> Result:
        import paramiko

        started = time.monotonic()
        # Backstop in case the remote `timeout` itself hangs: give it its grace period and more.
        deadline = None if timeout is None else started + timeout + KILL_GRACE + 10
        channel, watchdog = self._open_channel()
        out, err = bytearray(), bytearray()
        failed: list[BaseException] = []
        try:
            channel.exec_command(command)
            returncode = _exchange(channel, stdin, deadline, out, err, failed)
            if failed:  # the input's own source broke: the command must not finish on it
                raise _InputFailed
        except _InputFailed:
            self._stop_remote(channel, _announced(bytes(err))[0])
            raise failed[0] from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._broken(watchdog, exc) from None
        except BaseException:  # Ctrl-C, SIGTERM: the remote command stops with us
            self._stop_remote(channel, _announced(bytes(err))[0])
            raise
        finally:
            channel.close()
        return self._outcome(args, returncode, out, err, started, timeout, check, watchdog)

    def _outcome(
        self,
        args: list[str],
        returncode: int | None,
        out: bytes | bytearray,
        err: bytes | bytearray,
        started: float,
        timeout: float | None,
        check: bool,
        watchdog: Watchdog,
    ) -> Result:
        """How a remote command ended (``returncode`` None: it was out of time), as a
        ``Result`` or the error it is."""
        err = _announced(bytes(err))[1]
        if returncode == NO_EXIT_STATUS and not watchdog.alive():
            raise self._broken(watchdog)
        duration = time.monotonic() - started
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        if returncode is None or (
            timeout is not None and returncode in TIMEOUT_EXITS and duration >= timeout
        ):
            raise CommandError(args, None, stdout + stderr, self.name)
        if check and returncode != 0:
            raise CommandError(args, returncode, stdout + stderr, self.name)
        return Result(args, returncode, stdout, stderr, duration)

    @contextmanager
    def stream(self, argv: Sequence[str], *, timeout: float) -> Iterator[Iterator[bytes]]:
        import paramiko

        args = [str(a) for a in argv]
        started = time.monotonic()
        deadline = started + timeout + KILL_GRACE + 10  # as in ``_execute``
        channel, watchdog = self._open_channel()
        err = bytearray()
        try:
            channel.exec_command(remote_command(args, timeout=timeout))
            channel.shutdown_write()
            yield self._received(args, channel, watchdog, err, deadline)
            if not channel.eof_received:  # the reader stopped early: so does the command
                self._stop_remote(channel, _announced(bytes(err))[0])
            ended = channel.status_event.wait(max(deadline - time.monotonic(), 0))
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(CHUNK)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._broken(watchdog, exc) from None
        except BaseException:  # the reader failed, Ctrl-C, SIGTERM: the command stops too
            self._stop_remote(channel, _announced(bytes(err))[0])
            raise
        finally:
            channel.close()
        returncode = int(channel.recv_exit_status()) if ended else None
        self._outcome(args, returncode, b"", err, started, timeout, True, watchdog)

    def _received(
        self, args: list[str], channel: Any, watchdog: Watchdog, err: bytearray, deadline: float
    ) -> Iterator[bytes]:
        """A remote command's stdout as it arrives (its stderr collected into ``err``); the
        SSH window bounds what waits in memory."""
        while True:
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(CHUNK)
            if channel.recv_ready():
                yield channel.recv(CHUNK)
            elif channel.eof_received:
                return
            elif channel.closed or not watchdog.alive():
                raise self._broken(watchdog)
            elif (wait := deadline - time.monotonic()) <= 0:
                raise CommandError(args, None, _announced(bytes(err))[1].decode(), self.name)
            else:
                select.select([channel], [], [], min(wait, 0.5))

    def _open_channel(
        self,
        kind: str = "session",
        dest: tuple[str, int] | None = None,
        origin: tuple[str, int] | None = None,
    ) -> tuple[Any, Watchdog]:
        """A new channel and the watchdog of its connection. A channel the peer did not even
        refuse in time means a stall if the connection does not answer a probe either (sshd
        confirms a forwarded channel only once its own connect is done: that can be slow on a
        live connection, which other steps still use)."""
        import paramiko

        transport, watchdog = self._connection()
        started = time.monotonic()
        try:
            channel = transport.open_channel(kind, dest, origin, timeout=self.bounds.answer)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            slow = time.monotonic() - started >= self.bounds.answer
            if slow and watchdog.alive() and not probe(transport, self.bounds.answer):
                watchdog.fail(f"no answer to opening a channel within {self.bounds.answer:g}s")
            raise self._broken(watchdog, exc) from None
        return channel, watchdog

    def _stop_remote(self, channel: Any, group: int | None) -> None:
        """Stop an interrupted remote command's whole process group: TERM, then KILL after
        ``KILL_GRACE``; bounded. Closing the channel alone would leave it running until its
        remote ``timeout``, and an undo would race it. Best effort: if the connection is gone
        (or the command never said its group), that ``timeout`` is all that is left."""
        if group is None:
            return
        for signal_name in ("TERM", "KILL"):
            try:
                killer, _ = self._open_channel()
                try:
                    killer.exec_command(shlex.join(["kill", f"-{signal_name}", "--", f"-{group}"]))
                    killer.status_event.wait(self.bounds.answer)
                finally:
                    killer.close()
            except (DeployFailure, OSError, EOFError):
                return
            if channel.status_event.wait(KILL_GRACE):
                return

    # -- files --------------------------------------------------------------------------------

    @contextmanager
    def _sftp(self) -> Iterator[Any]:
        """This thread's SFTP session. A reply that does not come within the liveness bound
        (the channel's timeout) or a session that dies under the call is a DeployFailure; a
        remote file error (missing, permission, ...) stays what it is."""
        import paramiko

        watchdog = self._connection()[1]  # first: a new connection drops the old sessions
        me = threading.get_ident()
        with self._sftp_lock:
            sftp = self._sftps.get(me)
        if sftp is None:
            channel, watchdog = self._open_channel()
            try:
                channel.settimeout(self.bounds.limit)
                channel.invoke_subsystem("sftp")
                sftp = paramiko.SFTPClient(channel)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise self._broken(watchdog, exc) from None
            with self._sftp_lock:
                self._sftps[me] = sftp
        try:
            yield sftp
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if isinstance(exc, TimeoutError):
                watchdog.fail(f"no answer to an SFTP request within {self.bounds.limit:g}s")
            elif isinstance(exc, OSError) and watchdog.alive() and not sftp.sock.closed:
                raise  # the server's answer: no such file, permission denied, ...
            with self._sftp_lock:
                if self._sftps.get(me) is sftp:
                    del self._sftps[me]  # the next call opens a new session
            raise self._broken(watchdog, exc) from None

    def read_file(self, path: str) -> bytes:
        with self._sftp() as sftp, sftp.open(path, "rb") as fh:
            fh.prefetch()
            data: bytes = fh.read()
            return data

    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        """Upload to a temp name beside ``path``, set the mode, then rename over ``path``."""
        import paramiko

        with self._sftp() as sftp:
            if mode is None:
                try:
                    mode = stat.S_IMODE(sftp.stat(path).st_mode)
                except FileNotFoundError:
                    mode = NEW_FILE_MODE
            directory, base = posixpath.split(path)
            tmp = posixpath.join(directory, f".{base}.{secrets.token_hex(4)}.tmp")
            try:
                with sftp.open(tmp, "wb") as fh:
                    fh.chmod(mode)  # before any byte is written: a secret is never world-readable
                    fh.set_pipelined(True)
                    fh.write(data)
                sftp.posix_rename(tmp, path)
            except TimeoutError:
                raise  # the connection froze: a removal would wait as long again
            except BaseException:
                with suppress(OSError, EOFError, paramiko.SSHException):  # a dead connection
                    sftp.remove(tmp)
                raise

    def append_file(self, path: str, data: bytes) -> None:
        new = not self.exists(path)
        with self._sftp() as sftp, sftp.open(path, "ab") as fh:  # SFTP's APPEND: O_APPEND
            if new:
                fh.chmod(NEW_FILE_MODE)
            fh.write(data)

    def exists(self, path: str) -> bool:
        with self._sftp() as sftp:
            try:
                sftp.stat(path)
            except FileNotFoundError:
                return False
            return True

    def makedirs(self, path: str, mode: int = 0o755) -> None:
        """``mkdir -p`` over SFTP (a remote command would cost a login shell start)."""
        with self._sftp() as sftp:
            missing: list[str] = []
            current = posixpath.normpath(path)
            while current not in ("/", ".", ""):
                try:
                    if stat.S_ISDIR(sftp.stat(current).st_mode):
                        break
                    if missing:  # same errors as pathlib: a file on the way, or at the end
                        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", current)
                    raise FileExistsError(errno.EEXIST, "File exists", current)
                except FileNotFoundError:
                    missing.append(current)
                    current = posixpath.dirname(current)
            for directory in reversed(missing):
                try:
                    sftp.mkdir(directory, mode if directory == missing[0] else 0o755)
                except OSError:
                    if not self._is_dir(directory):  # else someone made it meanwhile: fine
                        raise

    def _is_dir(self, path: str) -> bool:
        with self._sftp() as sftp:
            try:
                return stat.S_ISDIR(sftp.stat(path).st_mode)
            except FileNotFoundError:
                return False

    def create_dir(self, path: str) -> bool:
        with self._sftp() as sftp:
            try:
                sftp.mkdir(path, 0o700)
            except OSError:
                if self.exists(path):  # SFTP reports EEXIST as a generic failure
                    return False
                raise
            return True

    def link_dir(self, target: str, link: str) -> None:
        with self._sftp() as sftp:
            sftp.symlink(target, link)

    def remove(self, path: str) -> None:
        self.run(["rm", "-rf", "--", path], timeout=600)

    def listdir(self, path: str) -> list[str]:
        if not self._is_dir(path):
            return []
        with self._sftp() as sftp:
            return sorted(sftp.listdir(path))

    def forward(self, remote_port: int) -> AbstractContextManager[int]:
        """A tunnel over this host's connection: when the watchdog closes a frozen one, the
        tunnel's open channels close with it, and its next client connects again."""
        self._connection()  # an unreachable host fails here, not in the tunnel's thread

        def open_channel(dest: tuple[str, int], origin: tuple[str, int]) -> Any:
            return self._open_channel("direct-tcpip", dest, origin)[0]

        return forward_local(open_channel, remote_port)


class _InputFailed(Exception):
    """``feed``'s chunks raised (in the feeding thread): the error is in its ``failed`` list."""


def _exchange(
    channel: Any,
    stdin: Iterable[bytes],
    deadline: float | None,
    out: bytearray,
    err: bytearray,
    failed: list[BaseException],
) -> int | None:
    """Feed stdin (in a thread, so a chatty command cannot deadlock us) and collect output
    into ``out`` and ``err`` (the caller's: what came so far is there if this is interrupted).

    Returns ``None`` as the exit code if ``deadline`` passed first, at once if the input's
    source failed (``failed``).
    """
    if stdin:
        pouring = (stdin, channel.sendall, channel.shutdown_write, lambda: None, failed)
        threading.Thread(target=pour, args=pouring, daemon=True).start()
    else:
        channel.shutdown_write()  # EOF at once, like stdin=DEVNULL locally
    while not failed:
        drained = False
        while channel.recv_ready():
            out += channel.recv(CHUNK)
            drained = True
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(CHUNK)
            drained = True
        finished = channel.exit_status_ready() and (channel.eof_received or channel.closed)
        if finished and not drained:
            return int(channel.recv_exit_status())
        wait = 0.5 if deadline is None else deadline - time.monotonic()
        if wait <= 0:
            return None
        if channel.eof_received:  # output is complete; only the exit status is still to come
            channel.status_event.wait(min(wait, 0.5))
        elif not drained:
            select.select([channel], [], [], min(wait, 0.5))
    return None


def keyscan_hint(address: str, port: int, known_hosts: str) -> str:
    """The command that appends a host's current keys to ``known_hosts``."""
    return f"ssh-keyscan -p {port} {address} >> {shlex.quote(known_hosts)}"


def forget_key_hint(address: str, port: int, known_hosts: str) -> str:
    """The command that removes a host's old key: its line is ``[addr]:port`` unless the port
    is 22, where it is the bare address."""
    pattern = address if port == 22 else f"[{address}]:{port}"
    return f"ssh-keygen -R {shlex.quote(pattern)} -f {shlex.quote(known_hosts)}"


@functools.cache
def _drop_paramiko_logs() -> None:
    """paramiko's transport thread logs connection errors with their tracebacks; with no
    handler configured, Python's last resort prints them on stderr, after the one clear message
    we give for each of those errors. A handler that drops them ends that (an application that
    configures logging still receives them)."""
    logging.getLogger("paramiko").addHandler(logging.NullHandler())


def _unknown_key_policy(host: SshHost) -> Any:
    """A paramiko policy for a host ``known_hosts`` has no key for: refused with an
    operator-facing message, or recorded when the host trusts new keys. paramiko asks it only
    for a host that has no key at all in the file: any other key, of any type, is a
    BadHostKeyException (a changed key), whatever the policy."""
    import paramiko

    class UnknownKey(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            if host.trust_new:
                record_host_key(host.known_hosts, hostname, key)
                client.get_host_keys().add(hostname, key.get_name(), key)
                host.notice(
                    f"{host.name}: first connection, recorded its {key.get_name()} key"
                    f" {key.fingerprint} in {host.known_hosts}"
                )
                return
            raise HostKeyError(
                f"host key of {host.name} ({hostname}) is not in {host.known_hosts}; refusing"
                f" to connect (it offered {key.get_name()} {key.fingerprint})",
                fix="compare that fingerprint with the host's own (`ssh-keygen -lf"
                " /etc/ssh/ssh_host_ed25519_key.pub` on it), then add the key:"
                f" {host._keyscan_hint()}, or connect once with --trust-new-hosts",
            )

    return UnknownKey()


_RECORDING = threading.Lock()  # hosts checked in parallel may record into one file


def record_host_key(known_hosts: str, hostname: str, key: Any) -> None:
    """Add ``hostname``'s ``key`` to ``known_hosts`` as one plain line (``[addr]:port type
    base64``, as ``ssh-keyscan`` prints it; readable, and paramiko and OpenSSH read it too).

    One ``write`` with O_APPEND, then fsync: another process appending at the same time never
    overwrites it (a read, add and rename would lose that process's line). A line another
    thread or process wrote meanwhile for the same host and key is not written twice.
    """
    import paramiko

    line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
    with _RECORDING:
        known = paramiko.HostKeys(known_hosts)
        if known.check(hostname, key):
            return
        fd = os.open(known_hosts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            with open(known_hosts, "rb") as fh:
                fh.seek(max(size - 1, 0))
                ends_line = size == 0 or fh.read(1) == b"\n"
            os.write(fd, (line if ends_line else "\n" + line).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
