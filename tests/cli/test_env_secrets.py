"""Secrets never printed: a marker secret planted in env files that take every error path of
``invoke env.validate`` (table and ``--json``) never appears in stdout or stderr.

All scenarios run once, in parallel, in a module fixture (each real CLI run costs about a
second of interpreter start-up); each test then checks one scenario's output.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from tests.support.cli import Run, TempProject

STRONG = "Zq8-vN3r_Lk5wT1yXb7mP0sJ4hG6dF2aQ"
PW = "Pg7_Rt2-Wx9kLm4nBv6cZs1d"


def good_prod(**changes: str | None) -> dict[str, str | None]:
    values: dict[str, str | None] = {
        "ENVIRONMENT": "production",
        "LOG_LEVEL": "INFO",
        "DEBUG": "false",
        "PORT": "8000",
        "HEALTH_TIMEOUT": "2",
        "SECRET_KEY": STRONG,
        "POSTGRES_USER": "app",
        "POSTGRES_DB": "app",
        "POSTGRES_PASSWORD": PW,
        "DATABASE_URL": f"postgresql+psycopg://app:{PW}@db.example.internal:5432/app",
        "DB_POOL_SIZE": "20",
        "REDIS_URL": "redis://redis.example.internal:6379/0",
        "CELERY_BROKER_URL": "redis://redis.example.internal:6379/1",
        "CELERY_RESULT_BACKEND": "redis://redis.example.internal:6379/2",
        "WEB_CONCURRENCY": "4",
        "CELERY_CONCURRENCY": "4",
        "OPENAI_API_KEY": "sk-proj-AbCdEf0123456789_-AbCdEf",
        "FEATURE_NEW_CHECKOUT": "0",
        "FEATURE_LLM_SUMMARIES": "0",
    }
    values.update(changes)
    return values


def render(values: dict[str, str | None], extra: str = "") -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items() if v is not None) + extra


@dataclass
class Scenario:
    """An env file holding ``marker`` somewhere, and the rule its problem must be reported as."""

    name: str
    rule: str
    exit_code: int
    build: Callable[[TempProject, str], None]
    runs: dict[str, Run] = field(default_factory=dict)


def env_text(text: Callable[[str], str], mode: int = 0o600) -> Callable[[TempProject, str], None]:
    def build(project: TempProject, marker: str) -> None:
        project.write_env("prod", text(marker), mode)

    return build


def published_example(project: TempProject, marker: str) -> None:
    secret = f"{marker}-{marker}-Aa1"
    example = project.file("config/prod.env.example")
    example.write_text(example.read_text().replace("<secret-key>", secret))
    project.write_env("prod", render(good_prod(SECRET_KEY=secret)))


def published_url_password(project: TempProject, marker: str) -> None:
    example = project.file("config/prod.env.example")
    example.write_text(example.read_text().replace("app:<postgres-password>@", f"app:{marker}@"))
    url = f"postgresql://app:{marker}@db.example.internal:5432/app"
    project.write_env("prod", render(good_prod(DATABASE_URL=url)))


def tracked_by_git(project: TempProject, marker: str) -> None:
    project.write_env("prod", render(good_prod(SECRET_KEY=f"{marker}-{marker}-Aa1")))
    for argv in (["git", "init", "-q"], ["git", "add", "-f", "config/prod.env"]):
        subprocess.run(argv, cwd=project.path, check=True, timeout=30, capture_output=True)


def not_utf8(project: TempProject, marker: str) -> None:
    text = render(good_prod(SECRET_KEY=None)).encode()
    project.write_env("prod", text + f"SECRET_KEY={marker}".encode() + b"\xff\n")


def config_error(project: TempProject, marker: str) -> None:
    project.write_env("prod", render(good_prod(SECRET_KEY=marker)))
    deploy = project.file("config/deploy.toml")
    deploy.write_text(deploy.read_text().replace("max_parallel = 8", 'max_parallel = "many"'))


SCENARIOS = [
    Scenario("weak: the example's own value", "weak-value", 2, published_example),
    Scenario("weak: url password from the example", "weak-value", 2, published_url_password),
    Scenario("strength: short secret", "strength", 2,
             env_text(lambda m: render(good_prod(SECRET_KEY=m)))),
    Scenario("placeholder around the secret", "placeholder", 2,
             env_text(lambda m: render(good_prod(SECRET_KEY=f"your_{m}_here")))),
    Scenario("format: api key", "format", 2,
             env_text(lambda m: render(good_prod(OPENAI_API_KEY=f"pk-{m}")))),
    Scenario("format: url scheme with password", "format", 2,
             env_text(lambda m: render(good_prod(DATABASE_URL=f"mysql://app:{m}@db/app")))),
    Scenario("format: not a url", "format", 2,
             env_text(lambda m: render(good_prod(DATABASE_URL=f"postgresql//app:{m}@db/app")))),
    Scenario("malformed: no equals sign", "syntax", 2,
             env_text(lambda m: render(good_prod(), f'SECRET_KEY "{m}"\n'))),
    Scenario("malformed: a lone secret", "syntax", 2,
             env_text(lambda m: render(good_prod(), f"{m}\n"))),
    Scenario("malformed: not utf-8", "syntax", 2, not_utf8),
    Scenario("unterminated quote", "unterminated-quote", 2,
             env_text(lambda m: render(good_prod(OPENAI_API_KEY=f'"sk-{m}')))),
    Scenario("duplicate key", "duplicate", 2,
             env_text(lambda m: render(good_prod(), f"SECRET_KEY={m}-{m}-Aa1\n"))),
    Scenario("empty value with a comment", "empty-comment", 2,
             env_text(lambda m: render(good_prod(SECRET_KEY=f" # {m}")))),
    Scenario("byte-order mark", "bom", 2,
             env_text(lambda m: "\ufeff" + render(good_prod(SECRET_KEY=f"{m}-{m}-Aa1")))),
    Scenario("production rules", "production", 2,
             env_text(lambda m: render(good_prod(SECRET_KEY=f"{m}-{m}-Aa1", LOG_LEVEL="DEBUG")))),
    Scenario("file readable by others", "file-mode", 2,
             env_text(lambda m: render(good_prod(SECRET_KEY=f"{m}-{m}-Aa1")), mode=0o644)),
    Scenario("unknown secret key: warning only", "example-unknown", 0,
             env_text(lambda m: render(good_prod(), f"SOME_TOKEN={m}\n"))),
    Scenario("tracked by git", "git-tracked", 2, tracked_by_git),
    Scenario("config error", "config", 2, config_error),
]  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Scenario, str]]:
    jobs = []
    out: dict[str, tuple[Scenario, str]] = {}
    for scenario in SCENARIOS:
        marker = f"MARK{secrets.token_hex(6)}"
        project = TempProject(tmp_path_factory.mktemp("secrets"))
        scenario.build(project, marker)
        assert marker.encode() in project.file("config/prod.env").read_bytes()
        out[scenario.name] = (scenario, marker)
        for mode in ("table", "json"):
            extra = ["--json"] if mode == "json" else []
            jobs.append((scenario, mode, project, extra))
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = pool.map(lambda j: j[2].invoke("env.validate", "--env", "prod", *j[3]), jobs)
        for (scenario, mode, _, _), run in zip(jobs, runs, strict=True):
            scenario.runs[mode] = run
    return out


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_marker_secret_never_printed(results: dict[str, tuple[Scenario, str]], name: str) -> None:
    scenario, marker = results[name]
    for mode, run in scenario.runs.items():
        assert marker not in run.output, f"{name} ({mode}) leaked the secret:\n{run.output}"
        assert marker[4:] not in run.output  # not even the random part
        assert "Traceback" not in run.stderr, run.stderr
        assert run.returncode == scenario.exit_code, f"{name} ({mode}):\n{run.output}"


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS if s.rule != "config"])
def test_each_scenario_takes_its_error_path(
    results: dict[str, tuple[Scenario, str]], name: str
) -> None:
    scenario, _ = results[name]
    report = json.loads(scenario.runs["json"].stdout)
    rules = {f["rule"] for f in report["findings"]}
    assert scenario.rule in rules, report
    assert scenario.rule in scenario.runs["table"].stdout


def test_config_error_names_the_file_and_key(results: dict[str, tuple[Scenario, str]]) -> None:
    scenario, _ = results["config error"]
    for run in scenario.runs.values():
        assert "deploy.toml" in run.stderr, run.stderr
        assert "environments.prod.rollout.max_parallel" in run.stderr
        assert run.stdout == ""
