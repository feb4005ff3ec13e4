"""config/flags.toml: flags and ordered stages, and the configuration errors that name the file
and the key (unknown flag in a stage, a percentage outside 0-100, a lowering not marked)."""

from pathlib import Path

import pytest

from deploytools.errors import OperatorError
from deploytools.flags.plan import load_plan, parse_plan, parse_setting

ROOT = Path(__file__).resolve().parents[2]
FLAGS = """
[flags.new_checkout]
description = "one-page checkout"
owner = "shop"
expires = 2027-01-31
live = ["backend"]

[flags.llm-summaries]
description = "summaries"
owner = "ml"
expires = 2027-01-31
default = "on"
"""


def problems(text: str) -> str:
    with pytest.raises(OperatorError) as caught:
        parse_plan(text, "config/flags.toml")
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert message.startswith("config/flags.toml: ")
    return message


def test_the_example_plan_loads_with_stages_in_order() -> None:
    plan = load_plan(ROOT / "config" / "flags.toml")
    assert list(plan.stages) == ["week1", "week2", "week3", "week4"]
    assert plan.settings_at("week3") == {"new_checkout": 50, "llm_summaries": 0}
    assert plan.settings_at("week4") == {"new_checkout": 100, "llm_summaries": 10}
    assert plan.stages["week3"].guards[0].metric == "http_request_duration_p95_seconds"


def test_a_stage_keeps_what_it_does_not_name() -> None:
    plan = parse_plan(
        FLAGS + '[stages.a]\nflags = { new_checkout = "25%" }\n[stages.b]\n', "f.toml"
    )
    assert plan.initial() == {"new_checkout": 0, "llm-summaries": 100}
    assert list(plan.settings()) == [
        ("a", {"new_checkout": 25, "llm-summaries": 100}),
        ("b", {"new_checkout": 25, "llm-summaries": 100}),
    ]


def test_an_unknown_flag_in_a_stage() -> None:
    message = problems(FLAGS + "[stages.week2]\nflags = { new_chekout = 10 }\n")
    assert "stages.week2.flags.new_chekout: unknown flag" in message
    assert "new_checkout, llm-summaries" in message


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("110", "a percentage must be between 0 and 100"),
        ("-5", "a percentage must be between 0 and 100"),
        ('"yes please"', "must be on, off or a percentage 0-100"),
        ("true", "must be on, off or a percentage 0-100"),
        ("12.5", "must be on, off or a percentage 0-100"),
    ],
)
def test_a_setting_that_is_not_one(value: str, words: str) -> None:
    message = problems(FLAGS + f"[stages.week2]\nflags = {{ new_checkout = {value} }}\n")
    assert f"stages.week2.flags.new_checkout: {words}" in message


def test_a_lowering_must_be_meant() -> None:
    stages = "[stages.w2]\nflags = { new_checkout = 50 }\n"
    stages += "[stages.w3]\nflags = { new_checkout = 10 }\n"
    message = problems(FLAGS + stages)
    assert "stages.w3.flags.new_checkout: lowers new_checkout from 50 % (w2) to 10 %" in message
    assert "lower = true" in message
    from_default = problems(FLAGS + '[stages.w1]\nflags = { llm-summaries = "off" }\n')
    assert "flags.llm-summaries: lowers llm-summaries from on (the defaults)" in from_default
    plan = parse_plan(FLAGS + stages + "lower = true\n", "f.toml")
    assert plan.settings_at("w3")["new_checkout"] == 10


def test_every_problem_at_once_with_its_key() -> None:
    message = problems(
        FLAGS.replace('owner = "ml"\n', 'owner = "ml"\ncolour = "red"\n')
        + '[flags.Bad]\ndescription = "x"\nowner = "x"\nexpires = 2027-01-01\n'
        + '[stages.w1]\nguards = [{ path = "/stats" }]\n'
    )
    assert "flags.llm-summaries.colour: unknown key" in message
    assert "flags.Bad.[key]: flag name: lowercase letters" in message
    assert "stages.w1.guards.0: Value error, a guard reads one number" in message


def test_the_env_variable_is_the_one_the_client_falls_back_to() -> None:
    message = problems(FLAGS.replace('live = ["backend"]', 'env = "FEATURE_CHECKOUT"'))
    assert "flags.new_checkout.env: must be FEATURE_NEW_CHECKOUT" in message


def test_a_service_reads_live_or_at_start() -> None:
    both = 'live = ["backend"]\nstart = ["backend"]'
    message = problems(FLAGS.replace('live = ["backend"]', both))
    assert "flags.new_checkout: Value error, a service reads a flag live or at start" in message


@pytest.mark.parametrize(
    ("text", "percent"), [("on", 100), (" OFF ", 0), ("25%", 25), ("7", 7), (100, 100)]
)
def test_parse_setting(text: object, percent: int) -> None:
    assert parse_setting(text) == percent
