"""The OpenFeature provider, asked through the SDK's own API: the same answers as FlagClient and
flagd's reference evaluator key by key, OpenFeature's reasons and error codes, the env variable
as the fallback, and a rewritten file seen at the next 200 ms check."""

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from deploytools.flagclient import CHECK_INTERVAL, FlagClient
from deploytools.flagprovider import FlagFileProvider
from deploytools.flags import state
from deploytools.flags.bucketing import flag_bucket
from deploytools.flags.state import FlagState
from deploytools.testing import Clock

KEYS = [f"user-{i}" for i in range(2000)]
DOMAIN = "deploytools-tests"


def write_state(path: Path, settings: dict[str, int], stage: str = "week2") -> None:
    """The state file as flags.set writes it: rendered, then renamed into place."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(state.render(FlagState().changed(settings, by="ops", at="t0", stage=stage)))
    os.replace(tmp, path)


def write_doc(path: Path, flags: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"flags": flags}))
    os.replace(tmp, path)


@pytest.fixture
def client_for() -> Iterator[Any]:
    """``client_for(provider)``: an SDK client bound to ``provider`` (removed afterwards)."""

    def bind(provider: FlagFileProvider) -> OpenFeatureClient:
        api.set_provider_and_wait(provider, domain=DOMAIN)
        return api.get_client(domain=DOMAIN)

    yield bind
    api.clear_providers()


def test_same_answers_as_the_client_and_flagd_key_by_key(tmp_path: Path, client_for: Any) -> None:
    path = tmp_path / "flags.json"
    write_state(path, {"ten": 10, "fifty": 50})
    flagd = FlagdCore()
    flagd.set_flags(path.read_text())
    ours = FlagClient(path, environ={})
    flags = client_for(FlagFileProvider(path, environ={}))
    for name, percent in (("ten", 10), ("fifty", 50)):
        answers = []
        for key in [*KEYS, None]:
            context = EvaluationContext(targeting_key=key)
            value = flags.get_boolean_value(name, False, context)
            assert value is ours.is_enabled(name, key), (name, key)
            assert value is flagd.resolve_boolean_value(name, False, context).value, (name, key)
            answers.append(value)
        assert answers == [flag_bucket(name, k) < percent for k in KEYS] + [False]


def test_reasons_variants_and_metadata(tmp_path: Path, client_for: Any) -> None:
    path = tmp_path / "flags.json"
    write_state(path, {"on": 100, "off": 0, "ten": 10}, stage="week2")
    flags = client_for(FlagFileProvider(path, environ={}))
    inside = next(k for k in KEYS if flag_bucket("ten", k) < 10)

    on = flags.get_boolean_details("on", False)
    assert (on.value, on.variant, on.reason, on.error_code) == (True, "on", Reason.STATIC, None)
    assert on.flag_metadata == {
        "flagSetId": "deploytools", "stage": "week2", "changedBy": "ops", "changedAt": "t0"
    }  # fmt: skip
    off = flags.get_boolean_details("off", True)
    assert (off.value, off.variant, off.reason) == (False, "off", Reason.STATIC)
    hit = flags.get_boolean_details("ten", False, EvaluationContext(targeting_key=inside))
    assert (hit.value, hit.variant, hit.reason) == (True, "on", Reason.TARGETING_MATCH)
    keyless = flags.get_boolean_details("ten", True)
    assert (keyless.value, keyless.variant, keyless.reason) == (False, "off", Reason.DEFAULT)


def test_errors_and_the_env_fallback(tmp_path: Path, client_for: Any) -> None:
    path = tmp_path / "flags.json"
    write_doc(
        path,
        {
            "disabled": {"state": "DISABLED", "variants": {"on": True}, "defaultVariant": "on"},
            "words": {"state": "ENABLED", "variants": {"a": "x"}, "defaultVariant": "a"},
            "half-env": {"state": "DISABLED", "variants": {"on": True}, "defaultVariant": "on"},
        },
    )
    environ = {"FEATURE_FROM_ENV": "on", "FEATURE_HALF_ENV": "50", "FEATURE_GARBLED": "maybe"}
    flags = client_for(FlagFileProvider(path, environ=environ))

    missing = flags.get_boolean_details("nowhere", True)  # the caller's default
    assert (missing.value, missing.reason) == (True, Reason.ERROR)
    assert missing.error_code == ErrorCode.FLAG_NOT_FOUND
    assert str(path) in str(missing.error_message)
    garbled = flags.get_boolean_details("garbled", True)  # not a value: as if unset
    assert (garbled.value, garbled.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
    env = flags.get_boolean_details("from_env", False)
    assert (env.value, env.variant, env.reason, env.error_code) == (True, "on", "STATIC", None)
    inside = next(k for k in KEYS if flag_bucket("half-env", k) < 50)
    half = flags.get_boolean_details("half-env", False, EvaluationContext(targeting_key=inside))
    assert (half.value, half.reason) == (True, Reason.TARGETING_MATCH)  # disabled: the env's

    disabled = flags.get_boolean_details("disabled", True)
    assert (disabled.value, disabled.reason, disabled.error_code) == (True, Reason.DISABLED, None)
    words = flags.get_boolean_details("words", False)
    assert (words.value, words.error_code) == (False, ErrorCode.TYPE_MISMATCH)
    for asked in (
        flags.get_string_details("from_env", "dflt"),
        flags.get_integer_details("from_env", 7),
        flags.get_float_details("from_env", 0.5),
        flags.get_object_details("from_env", {"a": 1}),
    ):
        assert asked.error_code == ErrorCode.TYPE_MISMATCH and asked.reason == Reason.ERROR
    assert flags.get_string_value("from_env", "dflt") == "dflt"


def test_a_rewrite_is_seen_at_the_next_check(tmp_path: Path, client_for: Any) -> None:
    path = tmp_path / "flags.json"
    write_state(path, {"k": 100})
    clock = Clock(50.0)
    flags = client_for(FlagFileProvider(path, environ={}, clock=clock))
    assert flags.get_boolean_value("k", False) is True
    write_state(path, {"k": 0})
    clock.now = 50.0 + CHECK_INTERVAL - 0.01
    assert flags.get_boolean_value("k", False) is True  # not looked at yet
    clock.now = 50.0 + CHECK_INTERVAL
    assert flags.get_boolean_value("k", True) is False


def test_a_rewrite_is_seen_within_the_interval_in_real_time(
    tmp_path: Path, client_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "flags.json"
    write_state(path, {"k": 100})
    monkeypatch.setenv("DEPLOYTOOLS_FLAGS_FILE", str(path))  # the default path
    flags = client_for(FlagFileProvider())
    assert flags.get_boolean_value("k", False) is True
    write_state(path, {"k": 0})
    written = time.monotonic()
    while flags.get_boolean_value("k", False):
        assert time.monotonic() - written < CHECK_INTERVAL + 0.1
        time.sleep(0.005)


def test_context_attributes_reach_a_bucketing_expression(tmp_path: Path, client_for: Any) -> None:
    """A flagd file that buckets by another attribute than the key: the provider passes the
    evaluation context's attributes, and agrees with flagd's evaluator."""
    path = tmp_path / "flags.json"
    by_email = {"fractional": [{"cat": [{"var": "email"}, "-x"]}, ["on", 30], ["off", 70]]}
    write_doc(
        path,
        {"mail": {"state": "ENABLED", "variants": {"on": True, "off": False},
                  "defaultVariant": "off", "targeting": by_email}},
    )  # fmt: skip
    flagd = FlagdCore()
    flagd.set_flags(path.read_text())
    flags = client_for(FlagFileProvider(path, environ={}))
    answers = []
    for i in range(500):
        context = EvaluationContext(targeting_key="same", attributes={"email": f"u{i}@e.x"})
        value = flags.get_boolean_value("mail", False, context)
        assert value is flagd.resolve_boolean_value("mail", False, context).value, i
        answers.append(value)
    assert 0 < sum(answers) < len(answers)  # the attribute, not the key, decided
