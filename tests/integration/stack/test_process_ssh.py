"""The process runtime on a host reached over SSH (a simulated host: its own sshd and root).

Processes are started by the remote python3 from a spec on stdin, found again through PID
files on the host, probed through an SSH tunnel, and stopped by process group. Only the
standard library runs remotely (the host's python3 has no packages).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploytools.config import EnvironmentSettings
from deploytools.errors import DeployFailure
from deploytools.hosts.ssh import SshHost
from deploytools.probes.health import wait_healthy
from deploytools.runtime.process import ProcessRuntime
from tests.integration.stack.conftest import CapturedUi
from tests.support.procs import free_port
from tests.support.sshd import SshTarget
from tests.support.stackenv import make_settings

pytestmark = pytest.mark.integration

SLEEPER = (
    "import os, time; print('token', os.environ['API_TOKEN'][:4], flush=True); time.sleep(600)"
)


@dataclass
class Remote:
    host: SshHost
    settings: EnvironmentSettings
    values: dict[str, str]
    runtime: ProcessRuntime


@pytest.fixture(scope="module")
def remote(
    ssh_hosts: Callable[[str], SshTarget], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Remote]:
    target = ssh_hosts("stack-proc")
    settings = make_settings(
        tmp_path_factory.mktemp("ssh-process"),
        app_dir="app",
        state_dir=".deploytools",
        hosts=[
            {
                "name": target.name,
                "address": target.address,
                "port": target.port,
                "user": target.user,
                "key_file": target.key_file,
                "known_hosts": target.known_hosts,
                "root": target.root,
            }
        ],
        services={
            "web": {
                "command": ["{python}", "-m", "http.server", "--bind", "127.0.0.1", "{PORT}"],
                "probe": {"url": "http://127.0.0.1:{PORT}/", "timeout": 30},
            },
            "sleeper": {"command": ["{python}", "-c", SLEEPER]},
            "crasher": {"command": ["{python}", "-c", "import sys; sys.exit(4)"]},
        },
        timeouts={"stop": 5},
    )
    host = SshHost.from_settings(settings.hosts[0], settings.timeouts)
    host.makedirs(f"{target.root}/app")
    values = {"PORT": str(free_port()), "API_TOKEN": "tok-9f8e7d6c5b4a"}
    runtime = ProcessRuntime(settings, host, values)
    try:
        runtime.up("r1", ["web", "sleeper"])
        yield Remote(host, settings, values, runtime)
    finally:
        runtime.down()
        host.close()


def test_processes_run_on_the_remote_host_with_env_and_release(
    remote: Remote, captured: CapturedUi
) -> None:
    status = remote.runtime.status()
    assert (status["web"].state, status["web"].release) == ("running", "r1")
    assert remote.runtime.current_release() == "r1"
    healthy = wait_healthy(
        remote.settings,
        remote.runtime,
        captured.ui,
        host=remote.host,
        env_values=remote.values,
        services=["web", "sleeper"],
    )
    assert {h.service for h in healthy} == {"web", "sleeper"}
    assert "token tok-" in remote.runtime.logs("sleeper")
    assert remote.runtime.run_dir.startswith(str(Path(remote.settings.hosts[0].root)))
    done = remote.runtime.exec(
        "web", ["python3", "-c", "import os; print(os.environ['RELEASE_ID'])"]
    )
    assert (done.returncode, done.stdout.strip()) == (0, "r1")


def test_a_remote_process_that_exits_fails_the_wait_at_once(
    remote: Remote, captured: CapturedUi
) -> None:
    remote.runtime.up("r1", ["crasher"])
    with pytest.raises(DeployFailure) as failure:
        wait_healthy(
            remote.settings,
            remote.runtime,
            captured.ui,
            host=remote.host,
            env_values=remote.values,
            services=["crasher"],
        )
    assert failure.value.problem.startswith("crasher stopped (exited)")


def test_stop_ends_the_remote_process_group(remote: Remote) -> None:
    pid = int(remote.runtime.status()["sleeper"].detail.split()[1])
    remote.runtime.stop(["sleeper"])
    assert remote.runtime.status()["sleeper"].state == "missing"
    assert not remote.host.run(["kill", "-0", str(pid)], check=False).ok or _zombie(remote, pid)
    remote.runtime.up("r1", ["sleeper"])


def _zombie(remote: Remote, pid: int) -> bool:
    stat = remote.host.read_file(f"/proc/{pid}/stat")
    return stat.rpartition(b")")[2].split()[:1] == [b"Z"]


def test_remote_log_and_pid_files_are_private(remote: Remote) -> None:
    """As locally: 0600 from the first start, and a log made wider since is tightened."""
    run_dir = remote.runtime.run_dir
    files = [f"{run_dir}/{name}" for name in ("web.log", "web.pid", "sleeper.log", "sleeper.pid")]
    assert _modes(remote, files) == dict.fromkeys(files, "600")
    remote.host.run(["chmod", "644", f"{run_dir}/sleeper.log"])
    remote.runtime.up("r1", ["sleeper"])
    assert _modes(remote, files) == dict.fromkeys(files, "600")


def _modes(remote: Remote, paths: list[str]) -> dict[str, str]:
    out = remote.host.run(["stat", "-c", "%n %a", *paths], timeout=30).stdout
    return dict(line.rsplit(" ", 1) for line in out.splitlines())


def test_a_release_is_written_on_the_remote_host_from_the_commit_private_and_pruned(
    remote: Remote,
) -> None:
    """The tracked files of app/ only (the local env file beside them stays here), 0750/0640
    over SFTP, the shared data linked to the host's own app/var, removed by retention."""
    import os
    import stat
    import subprocess

    root = remote.settings.root
    (root / "app" / "pkg").mkdir(parents=True, exist_ok=True)
    (root / "app" / "pkg" / "mod.py").write_text("VERSION = 1\n")
    (root / ".gitignore").write_text("*.env\n")
    (root / "app" / "t.env").write_text(f"API_TOKEN={remote.values['API_TOKEN']}\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "code"]):
        subprocess.run([*git, *argv], cwd=root, check=True, capture_output=True)
    tag = "release-t-20261201T000000Z-abc1234"

    remote.runtime.build(tag)

    code = Path(remote.runtime.releases_dir) / tag
    found = {
        str(p.relative_to(code)): stat.S_IMODE(p.lstat().st_mode)
        for p in code.rglob("*")
        if not p.is_symlink()
    }
    assert found == {"pkg": 0o750, "pkg/mod.py": 0o640, ".deploytools-release": 0o640}
    assert stat.S_IMODE(os.stat(code).st_mode) == 0o750
    assert os.readlink(code / "var") == f"{remote.runtime.app_dir}/var"
    assert remote.runtime.has_release(tag) and tag in remote.runtime.stored_releases()
    remote.runtime.remove_release(tag)
    assert tag not in remote.runtime.stored_releases()
