"""The app's flag client: any flagd file with boolean variants and a fractional rule, re-read
when it changes (at most every 200 ms, no thread), env variable then off as fallbacks, and
nothing but the standard library."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deploytools import flagclient
from deploytools.flagclient import FlagClient
from deploytools.flags.bucketing import flag_bucket
from deploytools.testing import Clock

ROOT = Path(__file__).resolve().parents[2]
BOOL = {"on": True, "off": False}
KEYS = [f"user-{i}" for i in range(300)]


def write(path: Path, flags: dict[str, Any], **top: Any) -> None:
    """Replace the file atomically, as deploytools does."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"flags": flags, **top}))
    os.replace(tmp, path)


def flag(default: str = "off", **extra: Any) -> dict[str, Any]:
    return {"state": "ENABLED", "variants": BOOL, "defaultVariant": default, **extra}


def fifty(*head: Any) -> dict[str, Any]:
    return {"fractional": [*head, ["on", 50], ["off", 50]]}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "flags.json"


def test_on_off_and_a_percentage(path: Path) -> None:
    write(path, {"a": flag("on"), "b": flag("off"), "c": flag(targeting=fifty())})
    client = FlagClient(path, environ={})
    assert client.is_enabled("a", "user-1") and client.is_enabled("a")
    assert not client.is_enabled("b", "user-1")
    for key in KEYS:
        assert client.is_enabled("c", key) == (flag_bucket("c", key) < 50)


def test_a_missing_key_gets_the_default_variant(path: Path) -> None:
    write(path, {"c": flag("on", targeting=fifty()), "d": flag("off", targeting=fifty())})
    client = FlagClient(path, environ={})
    assert client.is_enabled("c") is True
    assert client.is_enabled("d") is False
    assert client.is_enabled("d", "") is False


def test_an_explicit_bucketing_expression(path: Path) -> None:
    flagd_default = {"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}
    write(
        path,
        {
            "same": flag(targeting=fifty(flagd_default)),
            "salted": flag(targeting=fifty({"cat": ["salt-", {"var": "targetingKey"}]})),
            "literal": flag(targeting=fifty("everyone-the-same")),
            "other-attr": flag("on", targeting=fifty({"var": "email"})),
        },
    )
    client = FlagClient(path, environ={})
    salted = {k for k in KEYS if client.is_enabled("salted", k)}
    for key in KEYS:
        assert client.is_enabled("same", key) == (flag_bucket("same", key) < 50)
        assert (key in salted) == (flag_bucket("salt-", key) < 50)
    literal = {client.is_enabled("literal", k) for k in KEYS}
    assert literal == {flag_bucket("everyone-the-", "same") < 50}
    assert all(client.is_enabled("other-attr", k) for k in KEYS)  # no email: default "on"


def test_evaluators_are_resolved(path: Path) -> None:
    write(path, {"c": flag(targeting={"$ref": "half"})}, **{"$evaluators": {"half": fifty()}})
    client = FlagClient(path, environ={})
    assert [client.is_enabled("c", k) for k in KEYS] == [flag_bucket("c", k) < 50 for k in KEYS]


def test_fallbacks_env_variable_then_off(path: Path) -> None:
    env = {"FEATURE_NEW_CHECKOUT": "on", "FEATURE_HALF": "50", "FEATURE_BAD": "yes please"}
    client = FlagClient(path, environ=env)  # no file yet
    assert client.is_enabled("new-checkout")
    assert [client.is_enabled("half", k) for k in KEYS] == [
        flag_bucket("half", k) < 50 for k in KEYS
    ]
    assert not client.is_enabled("half")  # a percentage without a key: off
    assert not client.is_enabled("bad", "user-1")
    assert not client.is_enabled("unknown", "user-1")
    write(
        path,
        {
            "other": flag("on"),
            "new-checkout": flag("off") | {"state": "DISABLED"},
            "half": flag("on") | {"variants": {"on": "yes", "off": "no"}},
        },
    )
    client = FlagClient(path, environ=env)
    assert client.is_enabled("new-checkout")  # disabled in the file: as if not there
    assert not client.is_enabled("half")  # not boolean: the env variable, keyless 50 %


def test_reread_when_changed_at_most_every_interval(path: Path) -> None:
    clock = Clock(100.0)
    write(path, {"k": flag("on")})
    client = FlagClient(path, environ={}, clock=clock)
    assert client.is_enabled("k")
    write(path, {"k": flag("off")})
    clock.now += 0.19
    assert client.is_enabled("k")  # not looked at yet
    clock.now += 0.01
    assert not client.is_enabled("k")


def test_a_broken_file_keeps_the_last_good_flags(path: Path) -> None:
    clock = Clock(100.0)
    write(path, {"k": flag("on")})
    client = FlagClient(path, environ={}, clock=clock)
    assert client.is_enabled("k")
    path.write_text('{"flags": {"k": ')
    clock.now += 1
    assert client.is_enabled("k")
    assert client.error is not None and str(path) in client.error
    write(path, {"k": flag("off")})
    clock.now += 1
    assert not client.is_enabled("k") and client.error is None


def test_module_level_reads_the_file_named_by_the_env(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(path, {"k": flag("on")})
    monkeypatch.setattr(flagclient, "_clients", {})
    monkeypatch.setenv("FEATURE_K", "off")
    monkeypatch.delenv(flagclient.FLAGS_FILE_VAR, raising=False)
    assert not flagclient.is_enabled("k")
    monkeypatch.setenv(flagclient.FLAGS_FILE_VAR, str(path))
    assert flagclient.is_enabled("k")


def test_importable_alone_with_the_standard_library_only(path: Path) -> None:
    """An app gets this module without deploytools' dependencies: the rest of the package is
    made unimportable, and every module loaded must be the standard library's."""
    write(path, {"k": flag(targeting=fifty())})
    code = f"""
import importlib.abc, json, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith("deploytools.") and name != "deploytools.flagclient":
            raise ImportError("refused: " + name)
        return None
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, {str(ROOT)!r})
before = set(sys.modules)
from deploytools.flagclient import FlagClient, is_enabled
answers = [is_enabled("k", f"user-{{i}}") for i in range(50)]
FlagClient({str(path)!r}).is_enabled("k", "user-1")
loaded = sorted(m for m in set(sys.modules) - before
                if m.split(".")[0] not in sys.stdlib_module_names)
print(json.dumps({{"loaded": loaded, "on": sum(answers)}}))
"""
    env = {"PATH": os.environ.get("PATH", ""), flagclient.FLAGS_FILE_VAR: str(path)}
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["loaded"] == ["deploytools", "deploytools.flagclient"]
    assert result["on"] == sum(flag_bucket("k", f"user-{i}") < 50 for i in range(50))
