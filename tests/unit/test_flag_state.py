"""The flag state file: valid flagd JSON that the app's client reads as the bucketing rule says,
our metadata inside it, written atomically with its mode kept, refused clearly when edited into
something else."""

import json
import os
from pathlib import Path

import pytest

from deploytools.errors import OperatorError
from deploytools.flagclient import FlagClient
from deploytools.flags import state
from deploytools.flags.bucketing import flag_bucket
from deploytools.flags.state import FlagState, FlagValue
from deploytools.hosts.local import LocalHost
from deploytools.testing import MemoryHost

KEYS = [f"user-{i}" for i in range(1000)]
AT = "2026-12-01T13:00:00Z"
STATE = FlagState().changed(
    {"new_checkout": 10, "llm_summaries": 0, "dark_mode": 100}, by="ana@ctl", at=AT, stage="week2"
)


def test_a_flagd_document_with_our_metadata_inside() -> None:
    doc = json.loads(state.render(STATE))
    assert doc["$schema"] == "https://flagd.dev/schema/v0/flags.json"
    assert doc["metadata"] == {
        "flagSetId": "deploytools",
        "stage": "week2",
        "changedBy": "ana@ctl",
        "changedAt": AT,
    }
    flags = doc["flags"]
    assert flags["new_checkout"] == {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "targeting": {"fractional": [["on", 10], ["off", 90]]},
        "metadata": {"changedBy": "ana@ctl", "changedAt": AT},
    }
    assert flags["llm_summaries"]["defaultVariant"] == "off"
    assert flags["dark_mode"]["defaultVariant"] == "on"
    assert "targeting" not in flags["llm_summaries"] and "targeting" not in flags["dark_mode"]


def test_the_client_reads_what_we_write(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    state.write(LocalHost(), str(path), STATE)
    client = FlagClient(path, environ={"FEATURE_LLM_SUMMARIES": "on"})
    on = {k for k in KEYS if client.is_enabled("new_checkout", k)}
    assert on == {k for k in KEYS if flag_bucket("new_checkout", k) < 10}
    assert not client.is_enabled("new_checkout")  # no key: the default variant, off
    assert not any(client.is_enabled("llm_summaries", k) for k in KEYS)  # the file wins
    assert client.is_enabled("dark_mode") and client.is_enabled("dark_mode", "user-1")


def test_round_trip_and_who_changed_what() -> None:
    assert state.parse(state.render(STATE), "f.json") == STATE
    settings = {"new_checkout": 10, "llm_summaries": 50}
    later = STATE.changed(settings, by="bo@ci", at="T2", stage=STATE.stage)
    assert later.flags["new_checkout"] == FlagValue(10, "ana@ctl", AT)  # unchanged: kept
    assert later.flags["llm_summaries"] == FlagValue(50, "bo@ci", "T2")
    assert later.flags["dark_mode"] == FlagValue(100, "ana@ctl", AT)
    assert (later.stage, later.changed_by, later.changed_at) == ("week2", "bo@ci", "T2")
    assert state.parse(state.render(later), "f.json") == later


def test_written_atomically_mode_kept_new_file_readable(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    host = LocalHost()
    state.write(host, str(path), STATE)
    assert path.stat().st_mode & 0o777 == 0o644
    os.chmod(path, 0o640)
    inode = path.stat().st_ino
    state.write(host, str(path), STATE.changed({"new_checkout": 50}, by="x", at="y", stage=None))
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert path.stat().st_mode & 0o777 == 0o640
    assert state.read(host, str(path)).flags["new_checkout"].percent == 50  # type: ignore[union-attr]
    assert [p.name for p in tmp_path.iterdir()] == ["flags.json"]  # no temp file left


def test_no_file_yet() -> None:
    assert state.read(MemoryHost(), "/srv/state/flags.json") is None


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'{"flags": {"a": ', "not valid JSON (line 1, column 17: Expecting value)"),
        (b"\xff\xfe", "not UTF-8 text"),
        (b"[]", 'no "flags" object'),
        (b'{"flags": {"a": {"state": "ENABLED"}}}', "flags.a is not on, off or a percentage"),
    ],
)
def test_a_file_edited_into_something_else(data: bytes, words: str) -> None:
    host = MemoryHost()
    host.files["/s/flags.json"] = data
    with pytest.raises(OperatorError) as caught:
        state.read(host, "/s/flags.json")
    assert caught.value.exit_code == 2
    assert str(caught.value).startswith(f"flag state /s/flags.json: {words}")


def test_a_rule_we_do_not_write_is_refused() -> None:
    doc = json.loads(state.render(STATE))
    doc["flags"]["new_checkout"]["targeting"] = {"fractional": [["on", 10], ["off", 10]]}
    with pytest.raises(OperatorError, match=r"flags\.new_checkout is not on, off"):
        state.parse(json.dumps(doc).encode(), "f.json")
