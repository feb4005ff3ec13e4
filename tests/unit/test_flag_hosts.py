"""Flag changes over several hosts (in-memory): every host gets the same file, a host that
fails sets the others back (a kill keeps going), a restore keeps a kill made meanwhile, the
flags lock of a writer that died is taken over, and a host whose copy differs is named."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest

from deploytools.errors import DeployFailure
from deploytools.flags import change, publish
from deploytools.flags.report import drift
from deploytools.site import Site
from deploytools.site.lock import FLAGS_LOCK, LockHeld
from deploytools.testing import MemoryHost, settings_for
from deploytools.ui import Ui

ROOT = Path(__file__).resolve().parents[2]
HOSTS = [
    {"name": "web-1", "address": "10.0.0.1", "primary": True},
    {"name": "web-2", "address": "10.0.0.2"},
    {"name": "web-3", "address": "10.0.0.3"},
]


class Broken(MemoryHost):
    """A host whose file writes fail while ``broken`` is set."""

    broken = False

    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        if self.broken and "/flags/" in path:
            raise DeployFailure(f"cannot reach {self.name}: connection reset")
        super().write_file(path, data, mode)


@pytest.fixture
def hosts() -> dict[str, Broken]:
    return {h["name"]: Broken(h["name"]) for h in HOSTS}


@pytest.fixture
def site(tmp_path: Path, hosts: dict[str, Broken]) -> Site:
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "flags.toml", tmp_path / "config" / "flags.toml")
    return Site(
        settings_for(tmp_path, hosts=HOSTS),
        Ui(stderr=io.StringIO(), stdout=io.StringIO()),
        control=MemoryHost("control", local=True),
        connect=lambda conf: hosts[conf.name],
    )


def files(site: Site, hosts: dict[str, Broken]) -> dict[str, bytes | None]:
    return {n: h.files.get(site.flags_file(n)) for n, h in hosts.items()}


def flag_records(hosts: dict[str, Broken], state: str) -> list[dict[str, object]]:
    journal = hosts["web-1"].files.get(f"{state}/journal.jsonl", b"").decode().splitlines()
    return [r for r in map(json.loads, journal) if str(r["kind"]).startswith("flags.")]


def test_a_stage_reaches_every_host_with_the_same_file(
    site: Site, hosts: dict[str, Broken]
) -> None:
    change.apply(site, change.plan_stage(site, "week1", force=False))
    change.apply(site, change.plan_stage(site, "week2", force=False))
    found = files(site, hosts)
    assert len(set(found.values())) == 1 and None not in found.values()
    doc = json.loads(found["web-1"] or b"")
    assert doc["metadata"]["stage"] == "week2"
    assert doc["flags"]["new_checkout"]["targeting"]["fractional"][0] == ["on", 10]
    assert [(r["kind"], r["result"]) for r in flag_records(hosts, site.state_dir)][-2:] == [
        ("flags.stage", "started"),
        ("flags.stage", "ok"),
    ]
    assert drift(site) == {}


def test_a_host_that_fails_sets_the_others_back(site: Site, hosts: dict[str, Broken]) -> None:
    change.apply(site, change.plan_stage(site, "week1", force=False))
    before = files(site, hosts)
    hosts["web-3"].broken = True
    with pytest.raises(DeployFailure) as caught:
        change.apply(site, change.plan_stage(site, "week2", force=False))
    assert "flags.stage not applied: web-3: cannot reach web-3" in caught.value.problem
    assert "the other hosts were set back" in caught.value.problem
    assert files(site, hosts) == before
    last = flag_records(hosts, site.state_dir)[-1]
    assert (last["result"], last["hosts_failed"]) == ("failed", ["web-3"])


def test_a_kill_keeps_the_hosts_it_reached(site: Site, hosts: dict[str, Broken]) -> None:
    change.apply(site, change.plan_stage(site, "week4", force=True))
    hosts["web-2"].broken = True
    with pytest.raises(DeployFailure) as caught:
        change.apply(site, change.plan_kill(site, ["new_checkout"]), keep_going=True)
    assert "flags.kill reached web-1, web-3, not web-2: cannot reach web-2" in caught.value.problem
    for name in ("web-1", "web-3"):
        flag = json.loads(files(site, hosts)[name] or b"")["flags"]["new_checkout"]
        assert flag["defaultVariant"] == "off"
    hosts["web-2"].broken = False
    assert drift(site) == {"web-2": "new_checkout on (primary: off)"}


def test_a_restore_keeps_a_flag_killed_meanwhile(site: Site, hosts: dict[str, Broken]) -> None:
    change.apply(site, change.plan_stage(site, "week3", force=True))
    before = publish.read(site)
    applied = change.apply(site, change.plan_stage(site, "week4", force=False))
    change.apply(site, change.plan_kill(site, ["llm_summaries"]), keep_going=True)

    restored = change.restore(site, before, applied)

    percents = {name: value.percent for name, value in restored.flags.items()}
    assert percents == {"new_checkout": 50, "llm_summaries": 0}  # back, and still killed
    assert restored.stage == "week3"
    assert publish.read(site) == restored
    assert flag_records(hosts, site.state_dir)[-1]["changes"] == {
        "new_checkout": {"from": 100, "to": 50}
    }


def test_the_flags_lock_of_a_writer_that_died_is_taken_over(
    site: Site, hosts: dict[str, Broken], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish, "LOCK_WAIT", 0.0)
    lock = f"{site.state_dir}/{FLAGS_LOCK}"
    holder = {"user": "ann", "machine": os.uname().nodename, "since": 4e9, "command": "flags.set"}
    hosts["web-1"].dirs.add(lock)
    hosts["web-1"].files[f"{lock}/holder.json"] = json.dumps({**holder, "pid": 1}).encode()
    with pytest.raises(LockHeld):  # pid 1 is alive: a writer at work
        change.apply(site, change.plan_kill(site, ["new_checkout"]), keep_going=True)
    assert files(site, hosts)["web-1"] is None

    hosts["web-1"].files[f"{lock}/holder.json"] = json.dumps({**holder, "pid": 2**22 + 7}).encode()
    change.apply(site, change.plan_kill(site, ["new_checkout"]), keep_going=True)
    assert files(site, hosts)["web-1"] is not None and not hosts["web-1"].exists(lock)
    assert "took over the flags lock" in site.ui.err.file.getvalue()  # type: ignore[attr-defined]
