"""Our answers are flagd's: the reference evaluator (openfeature-flagd-core) reading the same
file gives the same value key by key, on the state files we write and on flagd files we did
not write (a bucketing expression, uneven weights, shared evaluators, no key)."""

import json
from pathlib import Path
from typing import Any

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from deploytools.flagclient import FlagClient
from deploytools.flags import state
from deploytools.flags.state import FlagState

KEYS = [f"user-{i}" for i in range(2000)]
BOOL = {"on": True, "off": False}


def agree(path: Path, names: list[str]) -> None:
    flagd = FlagdCore()
    flagd.set_flags(path.read_text())
    ours = FlagClient(path, environ={})
    for name in names:
        for key in [*KEYS, None]:
            context = EvaluationContext(targeting_key=key)
            expected = flagd.resolve_boolean_value(name, False, context).value
            assert ours.is_enabled(name, key) is expected, (name, key)


def test_the_state_files_we_write(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    settings = {"ten": 10, "fifty": 50, "one": 1, "ninety-nine": 99, "on": 100, "off": 0}
    path.write_bytes(state.render(FlagState().changed(settings, by="t", at="t", stage="w2")))
    agree(path, list(settings))
    flagd = FlagdCore()
    flagd.set_flags(path.read_text())
    assert flagd.get_flag_set_metadata()["stage"] == "w2"  # our metadata, read by flagd too


def test_flagd_files_we_did_not_write(tmp_path: Path) -> None:
    def flag(targeting: Any, default: str = "off") -> dict[str, Any]:
        return {
            "state": "ENABLED",
            "variants": BOOL,
            "defaultVariant": default,
            "targeting": targeting,
        }

    cat = {"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}
    doc = {
        "$evaluators": {"third": {"fractional": [["on", 1], ["off", 2]]}},
        "flags": {
            "explicit": flag({"fractional": [cat, ["on", 30], ["off", 70]]}),
            "salted": flag(
                {"fractional": [{"cat": ["s-", {"var": "targetingKey"}]}, ["on", 5], ["off", 5]]}
            ),
            "uneven": flag({"fractional": [["off", 3], ["on", 1], ["off", 0]]}, "on"),
            "weightless": flag({"fractional": [["on"], ["off"]]}),
            "shared": flag({"$ref": "third"}),
            "no-email": flag({"fractional": [{"cat": [{"var": "email"}, "-"]}, ["on"], ["off"]]}),
        },
    }
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(doc))
    agree(path, list(doc["flags"]))
