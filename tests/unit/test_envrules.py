"""The rules: built-in ones under a project's optional file, layers merged per environment,
every mistake named by file and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploytools.env import file as envfile
from deploytools.env.check import check_example, check_key
from deploytools.env.rules import (
    RULE_NAMES,
    EnvRules,
    builtin_rules,
    parse_rules,
    resolve,
    rules_for,
)
from deploytools.errors import OperatorError
from tests.support.stackenv import make_settings

PATH = Path("config/env.rules.toml")
ROOT = Path(__file__).resolve().parents[2]

RULES = """
[severity]
example-unknown = "warning"

[keys.LOG_LEVEL]
required = true
format = "choice"
choices = ["DEBUG", "INFO", "WARNING"]

[keys."FEATURE_*"]
format = "percent"

[keys.FEATURE_SPECIAL]
format = "bool"

[production.keys.LOG_LEVEL]
choices = ["INFO", "WARNING"]

[production.severity]
example-unknown = "error"

[environments.local.keys.LOG_LEVEL]
required = false
"""


def test_base_rules_apply_to_every_environment() -> None:
    rules = resolve(parse_rules(RULES, PATH), "staging", False, PATH)
    assert rules.keys["LOG_LEVEL"].choices == ["DEBUG", "INFO", "WARNING"]
    assert rules.severity["example-unknown"] == "warning"
    assert rules.base is None


def test_production_layer_overrides_and_keeps_the_rules_without_it_as_base() -> None:
    rules = resolve(parse_rules(RULES, PATH), "prod", True, PATH)
    assert rules.keys["LOG_LEVEL"].choices == ["INFO", "WARNING"]
    assert rules.keys["LOG_LEVEL"].required  # untouched fields keep the base value
    assert rules.base is not None
    assert rules.base.keys["LOG_LEVEL"].choices == ["DEBUG", "INFO", "WARNING"]
    assert rules.severity["example-unknown"] == "error"


def test_environment_layer_applies_to_that_environment_only() -> None:
    parsed = parse_rules(RULES, PATH)
    assert not resolve(parsed, "local", False, PATH).keys["LOG_LEVEL"].required
    assert resolve(parsed, "staging", False, PATH).keys["LOG_LEVEL"].required


def test_exact_name_wins_over_glob_and_globs_match() -> None:
    rules = resolve(parse_rules(RULES, PATH), "staging", False, PATH)
    assert rules.rule_for("FEATURE_NEW")[1].format == "percent"  # type: ignore[index]
    assert rules.rule_for("FEATURE_SPECIAL")[1].format == "bool"  # type: ignore[index]
    assert rules.rule_for("UNKNOWN") is None
    assert rules.required_keys() == ["LOG_LEVEL"]


def test_secret_by_rule_or_by_name() -> None:
    rules = resolve(
        parse_rules("[keys.SIGNING]\nsecret = true\n[keys.DB_PASS]\nformat='password'", PATH),
        "x",
        False,
        PATH,
    )
    assert rules.is_secret("SIGNING")
    assert rules.is_secret("DB_PASS")
    assert rules.is_secret("STRIPE_API_KEY")  # by name pattern, no rule needed
    assert not rules.is_secret("LOG_LEVEL")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[keys.PORT]\nformatt = 'int'\n", "keys.PORT.formatt: unknown key"),
        ("[keys.PORT]\nmin = 'low'\n", "keys.PORT.min"),
        ("[keys.PORT]\nformat = 'integer'\n", "keys.PORT.format"),
        ("[production.keys.PORT]\nrequired = 'yes please'\n", "production.keys.PORT.required"),
        ("[environments.local.keys.X]\npattern = '(['\n", "environments.local.keys.X.pattern"),
        ("[severity]\nsyntaks = 'error'\n", "severity"),
        ("[severity]\nsyntax = 'fatal'\n", "severity.syntax"),
        ("[placeholders.patterns]\nmine = '('\n", "placeholders.patterns.mine"),
        ("[placeholders.patterns]\nmine = 1\n", "placeholders.patterns.mine"),
        ("[severity]\nfile-mode = false\n", "severity.file-mode"),
        ("[severity]\nfile-mod = 'off'\n", "unknown rule(s) ['file-mod']"),
        ("[password]\nweak_values = 'hunter2'\n", "password.weak_values"),
        ("[urls]\nhostless_schemes = 'ftp'\n", "urls.hostless_schemes"),
        ("[keys.\"*_KEY\"]\nsecret = 'maybe'\n", "keys.*_KEY.secret"),
        ("[password]\nmin_length = 0\n", "password.min_length"),
        ("[keys.PORT\n", "not valid TOML"),
    ],
)
def test_mistakes_name_the_file_and_the_key_path(text: str, where: str) -> None:
    with pytest.raises(OperatorError) as caught:
        parse_rules(text, PATH)
    assert str(PATH) in caught.value.problem
    assert where in caught.value.problem


@pytest.mark.parametrize(
    ("env", "production"), [("local", False), ("staging", False), ("prod", True)]
)
def test_the_project_rules_file_loads_for_every_environment(env: str, production: bool) -> None:
    path = ROOT / PATH
    rules = resolve(parse_rules(path.read_text(encoding="utf-8"), path), env, production, path)
    assert "DATABASE_URL" in rules.required_keys()
    assert rules.is_secret("SECRET_KEY") and rules.is_secret("POSTGRES_PASSWORD")


def effective(text: str, env: str = "staging", production: bool = False) -> EnvRules:
    return resolve(parse_rules(text, PATH), env, production, PATH)


def test_the_built_in_rules_name_a_level_for_every_rule() -> None:
    assert set(builtin_rules()["severity"]) == RULE_NAMES


def test_without_a_rules_file_a_project_gets_the_built_in_rules(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)  # env_rules not set: config/env.rules.toml, absent
    rules = rules_for(settings)
    assert rules.source == tmp_path / "config/env.rules.toml"
    assert rules.required_keys() == []
    assert rules.severity["placeholder"] == "error" and rules.severity["git-ignore"] == "warning"
    assert rules.is_secret("SMTP_PASS") and rules.is_secret("GITHUB_TOKEN")
    assert [f.rule for f in check_key("SMTP_PASS", "changeme", rules, 1, set())] == ["placeholder"]
    assert [f.rule for f in check_key("GITHUB_TOKEN", "admin", rules, 1, set())] == ["weak-value"]
    example = envfile.parse(b"ANYTHING=1\n")
    assert check_example(example, rules) == []  # unknown-key is off until a project turns it on


def test_a_rules_file_named_in_the_config_must_exist(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, env_rules="config/rules.toml")
    with pytest.raises(OperatorError) as caught:
        rules_for(settings)
    assert "config/rules.toml not found" in caught.value.problem
    assert "env_rules" in caught.value.fix


def test_a_project_adds_keys_and_changes_severities_over_the_built_in_ones() -> None:
    rules = effective(
        "[severity]\ngit-ignore = 'error'\nfile-mode = 'warning'\n"
        "[keys.APP_MODE]\nrequired = true\nchoices = ['a', 'b']\n"
    )
    assert rules.required_keys() == ["APP_MODE"]
    assert (rules.severity["git-ignore"], rules.severity["file-mode"]) == ("error", "warning")
    assert rules.severity["placeholder"] == "error"  # what it does not name stays built in


def test_a_project_key_rule_merges_field_by_field_over_a_built_in_glob() -> None:
    rules = effective("[keys.\"*_PASSWORD\"]\nformat = 'password'\nmin_length = 20\n")
    _, rule = rules.rule_for("DB_PASSWORD")  # type: ignore[misc]
    assert (rule.secret, rule.format, rule.min_length) == (True, "password", 20)
    found = check_key("DB_PASSWORD", "Sh0rt-Pass-word", rules, 1, set())
    assert [f.rule for f in found] == ["strength"]


def test_weak_values_and_hostless_schemes_extend_the_built_in_lists() -> None:
    builtin = builtin_rules()
    rules = effective(
        "[password]\nweak_values = ['hunter2', 'admin']\nmin_length = 20\n"
        "[urls]\nhostless_schemes = ['unix']\n"
    )
    assert rules.password.weak_values == [*builtin["password"]["weak_values"], "hunter2"]
    assert rules.password.min_length == 20 and rules.password.min_classes == 3
    assert rules.hostless_schemes == {*builtin["urls"]["hostless_schemes"], "unix"}
    assert [f.rule for f in check_key("API_TOKEN", "Hunter2", rules, 1, set())] == ["weak-value"]


def test_a_project_switches_one_placeholder_pattern_off_and_adds_its_own() -> None:
    rules = effective("[placeholders.patterns]\nellipsis = false\nticket = '^TICKET-[0-9]+$'\n")
    assert check_key("LOADING_TEXT", "Loading...", rules, 1, set()) == []
    assert [f.rule for f in check_key("NOTE", "TICKET-42", rules, 1, set())] == ["placeholder"]
    assert [f.rule for f in check_key("NOTE", "<your name>", rules, 1, set())] == ["placeholder"]
    assert check_key("LOADING_TEXT", "Loading...", effective(""), 1, set()) != []


def test_switching_off_a_pattern_that_is_not_built_in_is_an_error() -> None:
    with pytest.raises(OperatorError) as caught:
        parse_rules("[placeholders.patterns]\nelipsis = false\n", PATH)
    problem = caught.value.problem
    assert str(PATH) in problem and "placeholders.patterns.elipsis" in problem
    assert "no built-in placeholder pattern 'elipsis'" in problem and "ellipsis" in problem


def test_a_rule_switched_off_is_not_checked_and_the_checks_after_it_still_run() -> None:
    text = "[keys.API_SECRET]\nformat = 'pattern'\npattern = '^s-[a-z]+$'\npattern_hint = 's-...'\n"
    assert [f.rule for f in check_key("API_SECRET", "admin", effective(text), 1, set())] == [
        "weak-value"
    ]
    off = effective(text + "[severity]\nweak-value = 'off'\n")
    found = check_key("API_SECRET", "admin", off, 1, set())
    assert [(f.rule, f.problem) for f in found] == [
        ("format", "API_SECRET does not look like s-...")
    ]
    assert "off" not in off.severity.values() and "weak-value" in off.off


def test_a_production_layer_may_switch_a_rule_off_for_production_only() -> None:
    text = "[production.severity]\nplaceholder = 'off'\n"
    assert check_key("NOTE", "TODO", effective(text, "prod", True), 1, set()) == []
    assert [f.rule for f in check_key("NOTE", "TODO", effective(text), 1, set())] == ["placeholder"]
