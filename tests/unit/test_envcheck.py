"""Value rules of the project's config/env.rules.toml: one finding per problem, never the value."""

from __future__ import annotations

import pytest

from deploytools.env import file as envfile
from deploytools.env.check import check_example, check_key, check_values, published_secrets
from deploytools.findings import Finding
from tests.support.project_rules import ROOT, rules

GOOD_SECRET = "Zq8-vN3r_Lk5wT1yXb7mP0sJ4hG6dF2a"  # 32 chars, 4 classes
GOOD_API_KEY = "sk-proj-AbCdEf0123456789_-AbCdEf"


def check(
    key: str, value: str | None, env: str = "staging", published: frozenset[str] = frozenset()
) -> list[Finding]:
    return check_key(key, value, rules(env), 7, set(published))


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SECRET_KEY", "your_secret_key_here_0123456789abcdef"),
        ("SECRET_KEY", "<secret-key>"),
        ("POSTGRES_PASSWORD", "ChangeMe-Please-0123456789"),
        ("OPENAI_API_KEY", "sk-xxxxxxxxxxxxxxxxxxxxxxxx"),
        ("OPENAI_API_KEY", "sk-..."),
        ("SECRET_KEY", "TODO"),
        ("SECRET_KEY", "insert_your_key_here"),
        ("SECRET_KEY", "clé-secrète-à-mettre-ici-0123456789AB"),
        ("DATABASE_URL", "postgresql://app:<password>@db:5432/app"),
        ("REDIS_URL", "redis://<host>:6379/0"),
    ],
)
def test_placeholders_are_found(key: str, value: str) -> None:
    found = only(check(key, value))
    assert (found.rule, found.key, found.line, found.severity) == ("placeholder", key, 7, "error")


@pytest.mark.parametrize(
    ("key", "value", "position", "what"),
    [
        ("SECRET_KEY", "clé-secrète-à-mettre-ici-0123456789AB", 3, "secrets and keys"),
        ("POSTGRES_PASSWORD", GOOD_SECRET + "\u00a0", 33, "secrets and keys"),  # pasted nbsp
        ("DATABASE_URL", "postgresql://app:Zq8-pässwörd@db:5432/app", 23, "URLs"),
    ],
)
def test_a_non_ascii_value_is_refused_saying_why(
    key: str, value: str, position: int, what: str
) -> None:
    found = only(check(key, value))
    assert (found.rule, found.severity) == ("placeholder", "error")
    assert found.problem.startswith(f"{key} has a non-ASCII character (character {position}):")
    assert f"{what} must be ASCII" in found.problem
    assert "placeholder in another language" in found.problem
    assert "your_" not in found.problem and "ASCII" in found.fix
    shown = found.problem + found.fix
    assert value not in shown and value[position - 1 :] not in shown  # no part of it from there
    assert value[position - 1] not in found.problem + found.fix


def test_a_placeholder_in_non_ascii_text_is_named_a_placeholder() -> None:
    found = only(check("SECRET_KEY", "your_clé_here_0123456789ABCDEFGHIJ"))
    assert found.rule == "placeholder" and "still holds a placeholder" in found.problem


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("SECRET_KEY", "password", "weak-value"),
        ("SECRET_KEY", "Password123!", "weak-value"),
        ("SECRET_KEY", "ADMIN", "weak-value"),
        ("SECRET_KEY", "123456", "weak-value"),
        ("POSTGRES_PASSWORD", "postgres", "weak-value"),
        ("POSTGRES_PASSWORD", "postgres_password", "weak-value"),  # the key's own name
        ("SECRET_KEY", "changeme", "placeholder"),  # reported once, as the bigger problem
    ],
)
def test_known_weak_values_of_secrets(key: str, value: str, rule: str) -> None:
    assert only(check(key, value)).rule == rule


def test_weak_value_message_names_the_key_but_not_the_value() -> None:
    found = only(check("POSTGRES_PASSWORD", "Password123!"))
    assert found.rule == "weak-value"
    assert found.problem == "the value of POSTGRES_PASSWORD is a known weak or default value"


def test_the_examples_own_value_is_weak() -> None:
    found = only(check("SECRET_KEY", GOOD_SECRET, published=frozenset({GOOD_SECRET})))
    assert (found.rule, "published in the example" in found.problem) == ("weak-value", True)


def test_published_secrets_are_the_examples_secret_values_and_url_passwords() -> None:
    example = envfile.parse(
        b"SECRET_KEY=abc\nLOG_LEVEL=INFO\nDATABASE_URL=postgresql://u:pw9@h/d\n"
    )
    assert published_secrets(example, rules("staging")) == {"abc", "pw9"}


def test_weak_password_inside_a_url() -> None:
    found = only(check("DATABASE_URL", "postgresql://app:admin@db:5432/app"))
    assert (found.rule, found.problem) == (
        "weak-value",
        "the password in DATABASE_URL is a known weak or default value",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sh0rt-Key", "is shorter than 32 characters"),
        ("a" * 16 + "b" * 16 + "c" * 8, "uses fewer than 3 kinds of characters"),
        ("aA1-" * 10, "has fewer than 8 different characters"),
    ],
)
def test_password_strength(value: str, expected: str) -> None:
    problems = [f.problem for f in check("SECRET_KEY", value) if f.rule == "strength"]
    assert any(expected in p for p in problems), problems


def test_a_strong_secret_passes() -> None:
    assert check("SECRET_KEY", GOOD_SECRET) == []
    assert check("OPENAI_API_KEY", GOOD_API_KEY) == []


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        (
            "DATABASE_URL",
            "mysql://app:Zq8vN3rLk5wT1yXb@db/app",
            "DATABASE_URL uses mysql://, which is not allowed here",
        ),
        ("DATABASE_URL", "db.example.internal:5432", "DATABASE_URL is not a URL"),
        ("DATABASE_URL", "sqlite://relative.db", "DATABASE_URL is a sqlite URL without a path"),
        ("REDIS_URL", "redis:///0", "REDIS_URL has no host name"),
        ("REDIS_URL", "redis://redis:port/0", "REDIS_URL has an invalid port or address"),
        ("PORT", "70000", "PORT is out of range (got '70000')"),
        ("PORT", "eighty", "PORT is not a whole number (got 'eighty')"),
        ("DB_POOL_SIZE", "2.5", "DB_POOL_SIZE is not a whole number (got '2.5')"),
        ("HEALTH_TIMEOUT", "nan", "HEALTH_TIMEOUT is not a number (got 'nan')"),
        ("FEATURE_NEW_CHECKOUT", "150", "FEATURE_NEW_CHECKOUT is out of range (got '150')"),
        ("FEATURE_NEW_CHECKOUT", "50%", "FEATURE_NEW_CHECKOUT is not a whole number (got '50%')"),
        ("DEBUG", "maybe", "DEBUG is not a boolean (got 'maybe')"),
        (
            "LOG_LEVEL",
            "LOUD",
            "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (got 'LOUD')",
        ),
    ],
)
def test_formats(key: str, value: str, problem: str) -> None:
    found = only(check(key, value))
    assert (found.rule, found.problem) == ("format", problem)


APP_PASSWORD = "Zq8vN3rLk5wT1yXb"


@pytest.mark.parametrize("env", ["staging", "prod"])
@pytest.mark.parametrize(
    "value",
    [
        f"postgresql+asyncpg://app:{APP_PASSWORD}@db:5432/app?ssl=disable",
        f"postgresql+asyncpg://app:{APP_PASSWORD}@db/app?ssl=verify-full&command_timeout=30",
        f"postgresql+psycopg://app:{APP_PASSWORD}@db/app?sslmode=require&application_name=web",
        f"postgresql+psycopg2://app:{APP_PASSWORD}@db/app?connect_timeout=5",
        f"postgres://app:{APP_PASSWORD}@db/app",
    ],
)
def test_database_urls_as_apps_write_them_pass(value: str, env: str) -> None:
    assert check("DATABASE_URL", value, env=env) == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            f"postgresql+asyncpg://app:{APP_PASSWORD}@db/app?ssl=true",
            "DATABASE_URL has ssl= set to something that is not an SSL mode",
        ),
        (
            f"postgresql+psycopg://app:{APP_PASSWORD}@db/app?sslmod=require",
            "DATABASE_URL has the option 'sslmod', which neither libpq",
        ),
        (
            f"postgresql+pg8000://app:{APP_PASSWORD}@db/app",
            "DATABASE_URL names the driver 'pg8000'",
        ),
        (
            f"mysql+pymysql://app:{APP_PASSWORD}@db/app",
            "DATABASE_URL uses mysql+pymysql://, which is not allowed here",
        ),
    ],
)
def test_a_database_url_no_client_takes_is_a_format_error(value: str, problem: str) -> None:
    found = only(check("DATABASE_URL", value))
    assert (found.rule, found.severity) == ("format", "error")
    assert found.problem.startswith(problem), found.problem
    assert APP_PASSWORD not in found.problem + found.fix


def test_an_async_sqlite_url_is_a_sqlite_url() -> None:
    assert check("DATABASE_URL", "sqlite+aiosqlite:///var/app.sqlite3", env="local") == []
    found = only(check("DATABASE_URL", "sqlite+aiosqlite://app.sqlite3", env="local"))
    assert found.problem == "DATABASE_URL is a sqlite URL without a path"


def test_api_key_pattern_is_described_never_quoted() -> None:
    found = only(check("OPENAI_API_KEY", "pk-live-0123456789abcdefghij"))
    assert found.rule == "format"
    assert "pk-live" not in found.problem + found.fix
    assert "an OpenAI API key" in found.problem


def test_choices_are_case_insensitive_and_good_values_pass() -> None:
    for key, value in [
        ("LOG_LEVEL", "info"),
        ("DEBUG", "False"),
        ("PORT", "8000"),
        ("FEATURE_X", "0"),
        ("HEALTH_TIMEOUT", "2.5"),
        ("DATABASE_URL", "sqlite:///var/app.sqlite3"),
        ("CELERY_BROKER_URL", "filesystem://"),
        ("REDIS_URL", "rediss://r.internal:6380/0"),
    ]:
        assert check(key, value, env="local") == [], key


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("LOG_LEVEL", "DEBUG", "LOG_LEVEL must be one of INFO, WARNING (got 'DEBUG')"),
        ("ENVIRONMENT", "staging", "ENVIRONMENT must be one of production (got 'staging')"),
        ("DEBUG", "true", "DEBUG must be one of false, 0, no, off (got 'true')"),
        ("DEBUG", None, "required key DEBUG is missing"),
        (
            "DATABASE_URL",
            "sqlite:///var/app.sqlite3",
            "DATABASE_URL uses sqlite://, which is not allowed here",
        ),
        (
            "CELERY_BROKER_URL",
            "filesystem://",
            "CELERY_BROKER_URL uses filesystem://, which is not allowed here",
        ),
    ],
)
def test_production_only_rules(key: str, value: str | None, problem: str) -> None:
    found = only(check(key, value, env="prod"))
    assert (found.rule, found.problem, found.severity) == ("production", problem, "error")
    assert check(key, value, env="local") == [] or key == "DEBUG"


def test_a_value_bad_everywhere_is_a_format_problem_in_production_too() -> None:
    found = only(check("DATABASE_URL", "mysql://app:Zq8vN3rLk5wT1yXb@db/app", env="prod"))
    assert found.rule == "format"
    assert only(check("LOG_LEVEL", "LOUD", env="prod")).rule == "format"


def test_required_keys_missing_or_empty() -> None:
    assert only(check("DATABASE_URL", None)).problem == "required key DATABASE_URL is missing"
    assert only(check("DATABASE_URL", "")).problem == "required key DATABASE_URL is empty"
    assert check("REDIS_URL", "", env="local") == []  # optional in local mode
    assert check("DB_POOL_SIZE", None) == []


def test_managed_key_must_not_be_in_the_file() -> None:
    assert only(check("RELEASE_ID", "v1")).rule == "managed"
    assert check("RELEASE_ID", None) == []


def test_check_values_covers_file_keys_and_required_keys() -> None:
    findings = check_values({"PORT": "0"}, {"PORT": 3}, rules("local"), set())
    keys = {f.key for f in findings}
    assert {"PORT", "DATABASE_URL", "SECRET_KEY", "ENVIRONMENT"} <= keys
    assert next(f for f in findings if f.key == "PORT").line == 3


def test_check_example_is_structural_only() -> None:
    example = envfile.parse(
        b"SECRET_KEY=<secret-key>\nENVIRONMENT=x\nLOG_LEVEL=x\nPORT=x\nDATABASE_URL=x\n"
        b"CELERY_BROKER_URL=x\nSURPRISE=1\nRELEASE_ID=1\nBROKEN LINE\n"
    )
    found = {(f.rule, f.key) for f in check_example(example, rules("local"))}
    assert found == {("unknown-key", "SURPRISE"), ("managed", "RELEASE_ID"), ("syntax", "")}


@pytest.mark.parametrize("env", ["local", "staging", "prod"])
def test_the_project_examples_pass_the_structural_check(env: str) -> None:
    example = envfile.parse((ROOT / f"config/{env}.env.example").read_bytes())
    assert check_example(example, rules(env)) == []
