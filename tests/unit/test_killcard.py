"""The kill card's key and when a card is used (flags/killcard.py); the kill it makes is
tested through the CLI (tests/cli/test_flags_cli.py)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from deploytools.flags import killcard
from deploytools.flags.killcard import CardKey, KillCard


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "config/deploy.toml").write_text("[environments.local]\n")
    (project / "config/flags.toml").write_text("[flags.a]\n")
    monkeypatch.chdir(project)
    return project


def key(conf: dict[str, object] | None = None, env: str | None = "local") -> CardKey:
    found = killcard.key_of(conf or {}, env)
    assert found is not None
    return found


def card(digest: str, **changes: object) -> KillCard:
    made = KillCard(
        digest=digest,
        env="local",
        state_dir="/srv/app/.deploytools/local",
        flags_file="/srv/app/.deploytools/local/flags/flags.json",
        command_timeout=600.0,
        kill_switch={"a": True, "b": True, "c": False},
        live_only=["a", "c"],
    )
    return replace(made, **changes)  # type: ignore[arg-type]


def test_every_input_of_the_settings_changes_the_key(root: Path) -> None:
    first = key()
    assert key() == first and first.file.parent == root.parent / "cache/deploytools/kill-cards"
    assert key(env=None).file != first.file  # the default environment has a card of its own
    assert key({"overrides": {"timeouts": {"command": 5}}}).digest != first.digest
    assert key(env="staging").digest != first.digest
    for name in ("deploy.toml", "flags.toml"):
        path = root / "config" / name
        text = path.read_text()
        path.write_text(text + "# a comment\n")
        assert key().digest != first.digest and key().file == first.file, name
        path.write_text(text)
    assert key() == first
    (root / "config/flags.toml").unlink()
    assert key().digest != first.digest


def test_no_config_file_no_key(root: Path) -> None:
    (root / "config/deploy.toml").unlink()
    assert killcard.key_of({}, "local") is None
    assert killcard.find(None, ["a"]) is None


def test_a_card_is_used_only_while_current_and_for_live_flags_that_may_be_killed(
    root: Path,
) -> None:
    now = key()
    assert killcard.find(now, ["a"]) is None  # none kept yet
    now.file.parent.mkdir(parents=True)
    now.file.write_text(json.dumps(asdict(card(now.digest))))
    assert killcard.find(now, ["a"]) == card(now.digest)
    assert killcard.find(now, ["b"]) is None  # read at start: the env file and a restart
    assert killcard.find(now, ["c"]) is None  # kill_switch = false: the full path refuses
    assert killcard.find(now, ["nope"]) is None  # unknown: the full path says so
    assert killcard.find(now, []) is None  # --all includes b
    only_live = card(now.digest, live_only=["a", "b"])
    now.file.write_text(json.dumps(asdict(only_live)))
    assert killcard.find(now, []) == only_live  # --all: a and b; c is left and said
    now.file.write_text(json.dumps(asdict(card("0" * 64))))
    assert killcard.find(now, ["a"]) is None  # kept for settings that have changed since
    now.file.write_text('{"digest": ')
    assert killcard.find(now, ["a"]) is None
    now.file.write_text(json.dumps({**asdict(card(now.digest)), "format_of_later": 1}))
    assert killcard.find(now, ["a"]) is None
    now.file.write_text(json.dumps({**asdict(card(now.digest)), "kill_switch": ["a"]}))
    assert killcard.find(now, ["a"]) is None
