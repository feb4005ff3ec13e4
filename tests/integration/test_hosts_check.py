"""``invoke hosts.check`` on real sshd hosts (process runtime): one that passes, one behind a
closed port, one whose key is unknown, one whose root is on a read-only file system; and the
checks of one host through a client that counts its commands: parts of the probe that fail for
real (no interpreter, no root, an engine that never answers)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploytools.config import EnvironmentSettings
from deploytools.hostcheck import check_hosts, check_names
from tests.support.blackhole import black_hole
from tests.support.cli import Run, TempProject
from tests.support.procs import free_port
from tests.support.sshd import CountingSshHost, SshTarget, counting

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-Zq8vN3rLk5wT1yXb7mP0"
CHECKS = ["reachable", "host key", "login", "python", "disk", "clock", "write"]


@pytest.fixture(scope="module")
def read_only_dir() -> Iterator[Path]:
    """A directory on a read-only tmpfs: not writable even for root (the tests run as root)."""
    path = Path(tempfile.mkdtemp(prefix="deploytools-ro-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1g", "deploytools-ro", str(path)],
                   check=True, capture_output=True, timeout=30)  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True, timeout=30)
        path.rmdir()


def host_entry(name: str, target: SshTarget, **keys: object) -> str:
    values = {**target.host_settings().model_dump(), "name": name, **keys}
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items())
    return f"\n[[environments.fleet.hosts]]\n{body}\n"


def fleet(tmp_path: Path, hosts: str) -> TempProject:
    project = TempProject(tmp_path)
    with project.file("config/deploy.toml").open("a") as toml:
        toml.write(
            '\n[environments.fleet]\nenv_file = "config/fleet.env"\n'
            'env_example = "config/local.env.example"\nruntime = "process"\n'
            "timeouts = { connect = 5, query = 10 }\n" + hosts
        )
    project.write_env("fleet", f"ENVIRONMENT=production\nSECRET_KEY={SECRET}\n")
    return project


def check(project: TempProject, *args: str) -> Run:
    run = project.invoke("hosts.check", "--env", "fleet", *args, timeout=120)
    assert "Traceback" not in run.output, run.output
    assert SECRET not in run.output
    return run


@pytest.fixture
def good(ssh_hosts: Callable[[str], SshTarget]) -> SshTarget:
    return ssh_hosts("check-good")


def test_every_failure_is_said_per_host_and_nothing_is_left_behind(
    ssh_hosts: Callable[[str], SshTarget], good: SshTarget, read_only_dir: Path, tmp_path: Path
) -> None:
    stranger, locked = ssh_hosts("check-stranger"), ssh_hosts("check-locked")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    gone = free_port()
    project = fleet(
        tmp_path,
        host_entry("good", good, primary=True, roles=["web", "worker"])
        + host_entry("gone", good, port=gone)
        + host_entry("stranger", stranger, known_hosts=str(empty))
        + host_entry("locked", locked, root=str(read_only_dir), roles=["worker"]),
    )
    before = sorted(Path(good.root).iterdir()), sorted(Path(stranger.root).iterdir())

    run = check(project)

    assert run.returncode == 1, run.output
    table = {line.split("│")[1].strip(): line for line in run.stdout.splitlines() if "│" in line}
    assert table["good"].count("✓") == len(CHECKS) and "web,worker" in table["good"]
    assert "✗" not in table["good"]
    assert "✗ cannot connect to gone" in table["gone"] and "connection refused" in run.stdout
    assert "✓ " in table["stranger"] and "✗ host key of stranger" in table["stranger"]
    assert f"✗ cannot create a file in {read_only_dir}: Read-only file system" in table["locked"]
    assert "error: 3 of 4 host(s) failed a check: gone (reachable), stranger (host key)," in (
        run.stderr
    )
    assert "locked (write)" in run.stderr
    assert (sorted(Path(good.root).iterdir()), sorted(Path(stranger.root).iterdir())) == before
    assert empty.read_text() == ""  # not recorded without --trust-new-hosts
    private = Path(good.key_file).read_text().splitlines()[1:-1]  # the key's base64 body
    assert not any(line in run.output for line in private)


def test_json_gives_every_check_of_every_host(good: SshTarget, tmp_path: Path) -> None:
    project = fleet(
        tmp_path,
        host_entry("good", good, primary=True) + host_entry("gone", good, port=free_port()),
    )
    run = check(project, "--json")
    assert run.returncode == 1, run.output
    data = json.loads(run.stdout)
    assert (data["env"], data["ok"]) == ("fleet", False)
    first, second = data["hosts"]
    assert (first["host"], first["roles"], first["ok"]) == ("good", ["web"], True)
    assert list(first["checks"]) == CHECKS
    assert all(c["ok"] is True and c["detail"] for c in first["checks"].values())
    assert first["checks"]["python"]["detail"].startswith("python3: Python 3.")
    assert (second["host"], second["ok"]) == ("gone", False)
    assert list(second["checks"]) == CHECKS
    assert second["checks"]["reachable"]["ok"] is False
    assert {c["ok"] for n, c in second["checks"].items() if n != "reachable"} == {None}

    narrowed = check(project, "--json", "--hosts", "good")  # the unreachable one left out
    assert narrowed.returncode == 0, narrowed.output
    assert [h["host"] for h in json.loads(narrowed.stdout)["hosts"]] == ["good"]


def test_trust_new_hosts_records_a_first_seen_key_once(
    ssh_hosts: Callable[[str], SshTarget], good: SshTarget, tmp_path: Path
) -> None:
    newcomer = ssh_hosts("check-newcomer")
    known = tmp_path / "known_hosts"
    known.write_text("")
    project = fleet(
        tmp_path,
        host_entry("good", good, primary=True)
        + host_entry("newcomer", newcomer, known_hosts=str(known)),
    )
    assert check(project).returncode == 1

    run = check(project, "--trust-new-hosts")

    assert run.returncode == 0, run.output
    assert "newcomer: first connection, recorded its ssh-ed25519 key SHA256:" in run.stderr
    assert "all 2 host(s) of fleet passed every check" in run.stderr
    assert len(known.read_text().splitlines()) == 1
    again = check(project)  # strict again, the key now known
    assert again.returncode == 0 and "recorded" not in again.stderr, again.output


def test_any_task_trusts_a_new_host_through_invoke_config(
    ssh_hosts: Callable[[str], SshTarget], tmp_path: Path
) -> None:
    """INVOKE_DEPLOYTOOLS_TRUST_NEW_HOSTS=1 reaches the Site of a task that has no flag for it
    (lock.status here; deploy and rollback alike)."""
    newcomer = ssh_hosts("check-lock")
    known = tmp_path / "known_hosts"
    known.write_text("")
    project = fleet(tmp_path, host_entry("newcomer", newcomer, known_hosts=str(known)))
    refused = project.invoke("lock.status", "--env", "fleet", timeout=120)
    assert refused.returncode == 2 and "is not in" in refused.stderr, refused.output

    trusting = {"INVOKE_DEPLOYTOOLS_TRUST_NEW_HOSTS": "1"}
    run = project.invoke("lock.status", "--env", "fleet", env=trusting, timeout=120)

    assert run.returncode == 0 and "unlocked" in run.stdout, run.output
    assert "newcomer: first connection, recorded its ssh-ed25519 key SHA256:" in run.stderr
    assert len(known.read_text().splitlines()) == 1


def probed(
    target: SshTarget, runtime: str, root: str | None = None, **keys: Any
) -> tuple[dict[str, tuple[bool | None, str]], Counter[str]]:
    """``check_hosts`` of one host (``root``: another deploy root; ``keys``: the environment's)
    through a counting client: each check's (ok, detail), and what the host was asked."""
    conf = target.host_settings().model_copy(update={"primary": True, "root": root or target.root})
    settings = EnvironmentSettings(
        name="probe", env_file="e", env_example="x", runtime=runtime, hosts=[conf],
        timeouts={"connect": 5, "query": 2},
        **({"compose": {"project_name": "probe"}} if runtime == "compose" else {}), **keys,
    )  # fmt: skip
    made: list[CountingSshHost] = []
    [report] = check_hosts(settings, connect=counting(settings.timeouts, made))
    assert [c.name for c in report.checks] == check_names(settings)
    return {c.name: (c.ok, c.detail) for c in report.checks}, made[0].counts


def test_the_probes_parts_that_fail_on_a_real_host_each_fail_their_own_check(
    good: SshTarget, tmp_path: Path
) -> None:
    """The login, then one probe: an interpreter the host lacks, a root that is not there (no
    df, no temp file); the host's clock is still read."""
    missing = tmp_path / "no-such-root"
    said, counts = probed(good, "process", root=str(missing), python="python-nowhere")
    nowhere = "python-nowhere does not run: python-nowhere: command not found"
    assert said["python"] == (False, nowhere)
    assert said["disk"] == (False, f"cannot tell the free space of {missing} (does it exist?)")
    assert said["write"] == (False, f"cannot create a file in {missing}: No such file or directory")
    assert said["clock"][0] is True, said
    assert counts["run"] == 2, counts


def test_a_hung_engine_fails_its_check_within_the_query_limit_and_the_rest_is_asked(
    ssh_hosts: Callable[..., SshTarget],
) -> None:
    """The host's docker CLI talks to an engine that accepts and never answers."""
    with black_hole() as hole:
        hung = ssh_hosts("check-hung", {"DOCKER_HOST": f"tcp://127.0.0.1:{hole.port}"})
        said, counts = probed(hung, "compose")
    assert said["docker"] == (False, "`docker version` gave no answer within 2s")
    assert said["compose"][0] is True and said["compose"][1].startswith("v2."), said
    rest = ("reachable", "host key", "login", "disk", "clock", "write")
    assert [said[n][0] for n in rest] == [True] * len(rest), said
    assert counts["run"] == 2, counts
    assert not list(Path(hung.root).glob(".deploytools-check.*"))  # its temp file removed
