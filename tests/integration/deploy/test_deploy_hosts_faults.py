"""A deploy over three hosts under faults and bad input, through the real CLI: a host whose
key is unknown or changed, ``--hosts``, SIGTERM during the roll out, what the hosts' command
lines show, and settings refused before any host is touched.

The hosts and the project are tests/support/hostsite.py's (one set for this module); a test
that needs the hosts serving first brings them to one healthy release (``baseline``).
"""

from __future__ import annotations

import json
import secrets
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.cmdlines import watch_cmdlines
from tests.support.deployproject import stop_process
from tests.support.hostsite import TOKEN, HostSite, site_fixture
from tests.support.postgres_server import PostgresServer, alembic_revision
from tests.support.processdeploy import wait_for
from tests.support.sshd import SshTarget

pytestmark = pytest.mark.integration

HOSTS = ("fault-1", "fault-2", "fault-3")
site = site_fixture(HOSTS)


def known_line(target: SshTarget) -> str:
    """The fixture's known_hosts line for ``target``: its real key."""
    lines = Path(target.known_hosts).read_text().splitlines()
    return next(line for line in lines if line.startswith(f"[127.0.0.1]:{target.port} "))


@pytest.mark.parametrize("key", ["unknown", "changed"])
def test_a_second_host_whose_key_is_not_known_stops_the_deploy_at_check_hosts(
    site: HostSite, tmp_path: Path, key: str
) -> None:
    before = site.baseline()
    roll2, roll3 = site.targets[1], site.targets[2]
    known = tmp_path / "known_hosts"  # what fault-2 is checked against
    forged = known_line(roll3).replace(f":{roll3.port} ", f":{roll2.port} ", 1)
    known.write_text("" if key == "unknown" else forged + "\n")
    site.configure(known_hosts={"fault-2": str(known)})
    site.commit(f"a release while fault-2's key is {key}")
    roots = site.roots()

    run = site.deploy()

    assert run.returncode == 1 and "Traceback" not in run.output, run.output
    assert "deploy failed at step 'check hosts'" in run.stderr, run.stderr
    assert "fault-2" in run.stderr
    said = {"unknown": ["is not in", "--trust-new-hosts"], "changed": ["does not match", "-R"]}
    assert all(words in run.stderr for words in said[key]), run.stderr
    assert site.serving() == dict.fromkeys(HOSTS, before)
    assert known.read_text() == ("" if key == "unknown" else forged + "\n")  # nothing recorded
    last = [e for e in site.journal() if e["kind"] == "step.start"][-1]
    assert last["step"] == "check hosts"  # no lock, build, backup or migration
    assert_unchanged_but_the_journals(roots, site.roots())


def assert_unchanged_but_the_journals(
    before: dict[str, tuple[bytes, int]], after: dict[str, tuple[bytes, int]]
) -> None:
    """Every file of every host as it was, the journals aside (a refused run is journaled: the
    site's on the primary, each checked host's own)."""
    a, b = (
        {path: v for path, v in files.items() if not path.endswith("journal.jsonl")}
        for files in (before, after)
    )
    assert not sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def test_hosts_narrows_the_roll_out_and_builds_on_the_primary_too(site: HostSite) -> None:
    before = site.baseline()
    site.commit("for fault-2 only")

    run = site.deploy("--hosts", "fault-2")

    assert run.returncode == 0, run.output
    tag = site.last_tag()
    assert site.serving() == {"fault-1": before, "fault-2": tag, "fault-3": before}
    assert site.started() == ["fault-2"]
    events = site.since_last_deploy()
    built = {e["host"] for e in events if e["kind"] == "host.step.done" and e["step"] == "build"}
    assert built == {"fault-1", "fault-2"}  # the primary too: the migration runs in its release
    assert not [e for e in events if e.get("host") == "fault-3"]


def test_hosts_naming_a_host_the_environment_lacks_is_refused(site: HostSite) -> None:
    site.configure()
    roots, serving = site.roots(), site.serving()

    run = site.deploy("--hosts", "fault-2,fault-9")

    assert run.returncode == 2 and "Traceback" not in run.output, run.output
    assert "--hosts names fault-9, which environment prod does not have" in run.stderr
    assert "name some of: fault-1, fault-2, fault-3" in run.stderr
    assert site.roots() == roots and site.serving() == serving


def journaled(site: HostSite, count: int, kind: str, host: str, step: str) -> Callable[[], bool]:
    """Whether the journal, past its first ``count`` lines, has that per-host event (a line
    being written is not read yet)."""

    def seen() -> bool:
        for line in (site.state() / "journal.jsonl").read_text().splitlines()[count:]:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if (event["kind"], event.get("host"), event.get("step")) == (kind, host, step):
                return True
        return False

    return seen


def test_sigterm_while_the_second_host_starts_takes_every_changed_host_back(
    site: HostSite,
) -> None:
    before = site.baseline()
    site.commit("interrupted while fault-2 starts")
    count = len(site.journal())

    proc = site.start()
    try:
        starting = journaled(site, count, "host.step.start", "fault-2", "start")
        wait_for("fault-2's start", starting, proc, timeout=180)
        proc.send_signal(signal.SIGTERM)
    finally:
        out, err = stop_process(proc, timeout=180)

    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err
    assert "interrupted at roll out" in err, err
    events = site.journal()[count:]
    taken_back = {e["host"] for e in events if e["kind"] == "host.step.undone"}
    assert taken_back == {"fault-1", "fault-2"}, events
    assert not [e for e in events if e.get("host") == "fault-3" and e["step"] == "start"]
    assert site.serving() == dict.fromkeys(HOSTS, before)
    assert not (site.state() / "deploy.lock").exists()
    assert events[-1]["kind"] == "release" and events[-1]["result"] == "failed"


HANGING = '''\
"""a migration that hangs on the database host"""

import subprocess

from alembic import context

revision = "h2"
down_revision = "a1"


def upgrade():
    if not context.is_offline_mode():  # the lint renders its SQL offline: that must pass
        subprocess.run(["sleep", "{seconds}"])


def downgrade():
    pass
'''


def test_a_command_hanging_on_the_primary_is_stopped_by_the_command_timeout(
    site: HostSite,
) -> None:
    before = site.baseline()
    seconds = f"{600 + secrets.randbelow(10_000) / 100_000:.5f}"  # a sleep no one else runs
    site.configure(timeouts={"command": 20})
    site.project.file("alembic/versions/h2_hangs.py").write_text(HANGING.format(seconds=seconds))
    site.commit("a migration that hangs")
    try:
        run = site.deploy()
    finally:
        site.project.file("alembic/versions/h2_hangs.py").unlink()
        site.commit("without the hanging migration")

    assert run.returncode == 1 and "Traceback" not in run.output, run.output
    assert "deploy failed at step 'migrate'" in run.stderr, run.stderr
    assert "timed out" in run.stderr, run.stderr
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if _holds(p, seconds)]
    assert site.serving() == dict.fromkeys(HOSTS, before)
    assert alembic_revision(site.url.replace("+psycopg", "")) == "a1"
    assert not (site.state() / "deploy.lock").exists()


def _holds(cmdline: Path, text: str) -> bool:
    """Whether the process's command line holds ``text`` (False: it is gone)."""
    try:
        return text.encode() in cmdline.read_bytes()
    except OSError:
        return False


def test_no_secret_is_on_a_command_line_of_any_host_during_a_deploy(
    site: HostSite, postgres_server: PostgresServer
) -> None:
    site.baseline()
    site.commit("watched")

    secrets = [TOKEN, postgres_server.password]
    with watch_cmdlines(secrets, hosted_by="deploytools-sshd-fault-") as seen:
        run = site.deploy()

    assert run.returncode == 0, run.output
    assert seen.lines == []
    # The control: the watch saw the hosts' side, the launcher that hands each service the env
    # file's values (on its stdin) among it.
    assert any("Popen(spec" in line for line in seen.hosted), sorted(seen.hosted)
    assert seen.passes > 100


def edit_host(host: str, keys: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda env: next(h for h in env["hosts"] if h["name"] == host).update(keys)


def edit_rollout(**keys: Any) -> Callable[[dict[str, Any]], None]:
    return lambda env: env["rollout"].update(keys)


def no_role(env: dict[str, Any]) -> None:
    env["services"]["web"]["roles"] = ["queue"]


BAD = {
    "a host name with spaces and metacharacters": (
        edit_host("fault-2", {"name": "roll 2;id"}),
        "environments.prod.hosts.1.name: Value error, a name may only hold",
    ),
    "a port outside 1-65535": (
        edit_host("fault-2", {"port": 70000}),
        "environments.prod.hosts.1.port: Input should be less than or equal to 65535",
    ),
    "a missing key file": (
        edit_host("fault-2", {"key_file": "keys/nope"}),
        "SSH key file missing for host fault-2 (environments.prod.hosts[1].key_file)",
    ),
    "two primaries": (
        edit_host("fault-3", {"primary": True}),
        "exactly one host must be primary = true (fault-1, fault-3 are all;",
    ),
    "no primary": (
        edit_host("fault-1", {"primary": False}),
        "exactly one host must be primary = true (none of them is;",
    ),
    "a role no host has": (no_role, "service 'web' runs on role(s) queue that no host has"),
    "batch_size 0%": (edit_rollout(batch_size="0%"), "environments.prod.rollout.batch_size"),
    "batch_size over 100%": (
        edit_rollout(batch_size="101%"),
        "environments.prod.rollout.batch_size",
    ),
    "max_fail 0%": (edit_rollout(max_fail="0%"), "environments.prod.rollout.max_fail"),
    "max_fail over 100%": (edit_rollout(max_fail="101%"), "environments.prod.rollout.max_fail"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_hosts_or_rollout_settings_are_refused_before_any_host_is_touched(
    site: HostSite, case: str
) -> None:
    edit, said = BAD[case]
    site.configure(edit=edit)
    roots, serving = site.roots(), site.serving()
    try:
        run = site.deploy()
    finally:
        site.configure()
    assert run.returncode == 2, run.output
    assert run.stderr.startswith("error: ") and "\n  fix: " in run.stderr, run.stderr
    assert "Traceback" not in run.output
    assert said in run.stderr, run.stderr
    assert site.roots() == roots and site.serving() == serving
