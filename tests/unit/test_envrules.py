"""The rules file: layers merged per environment, every mistake named by file and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploytools.envrules import parse_rules, resolve
from deploytools.errors import OperatorError

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
        ("[placeholders]\npatterns = ['(']\n", "placeholders.patterns"),
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
