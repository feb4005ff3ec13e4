"""The guesses ``invoke init`` makes from a project's compose files, alembic.ini and env samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploytools import projectscan, scaffold
from deploytools.errors import OperatorError
from deploytools.projectscan import Service


def service(name: str, **spec: object) -> Service:
    return Service(name, dict(spec))


@pytest.mark.parametrize(
    ("argv", "app"),
    [
        (["celery", "-A", "app.worker", "worker"], "app.worker"),
        (["celery", "--app", "shop.tasks:celery", "worker", "-l", "info"], "shop.tasks:celery"),
        (["celery", "--app=proj", "worker"], "proj"),
        (["celery", "-Aproj.celery", "worker"], "proj.celery"),
        (["celery", "worker"], None),
    ],
)
def test_the_celery_app_is_read_from_the_worker_command(argv: list[str], app: str | None) -> None:
    assert projectscan.celery_app(argv) == app


def test_a_command_string_is_split_as_a_shell_would() -> None:
    worker = service("w", command="celery -A 'app.worker' worker --loglevel INFO")
    assert projectscan.is_celery(worker)
    assert projectscan.celery_app(worker.argv) == "app.worker"


def test_the_backend_is_the_http_server_not_the_database_nor_the_worker() -> None:
    services = {
        "db": service("db", image="postgres:16", ports=["5432:5432"], healthcheck={"test": "x"}),
        "worker": service("worker", build=".", command="celery -A app worker"),
        "api": service("api", build=".", command=["gunicorn", "app:wsgi"], ports=["80:8000"]),
        "web": service("web", build=".", healthcheck={"test": ["CMD", "true"]}),
    }
    picked = projectscan.pick_backend(services)
    assert picked is not None
    assert (picked[0].name, picked[1]) == ("api", "runs gunicorn, publishes a port")


def test_no_backend_among_servers_and_workers() -> None:
    services = {
        "redis": service("redis", image="redis:7", ports=["6379:6379"]),
        "worker": service("worker", build=".", command="celery -A app worker"),
    }
    assert projectscan.pick_backend(services) is None


@pytest.mark.parametrize(
    ("ports", "published"),
    [
        (["8000:8000"], "8000"),
        (["127.0.0.1:8080:8000/tcp"], "8080"),
        (["${PORT:-8000}:8000"], "{PORT}"),
        (["$WEB_PORT:8000"], "{WEB_PORT}"),
        ([{"target": 8000, "published": 9000}], "9000"),
        (["8000"], None),  # container port only: compose picks a random host port
        ([], None),
    ],
)
def test_the_probe_port_is_the_published_host_port(ports: list[object], published: str) -> None:
    assert projectscan.published_port(service("web", ports=ports)) == published


def test_the_probe_path_comes_from_an_http_healthcheck() -> None:
    web = service("web", healthcheck={"test": "curl -fsS http://localhost:8000/healthz || exit 1"})
    assert projectscan.probe_path(web) == "/healthz"
    db = service("db", healthcheck={"test": ["CMD", "pg_isready"]})
    assert projectscan.probe_path(db) is None


def test_one_shots_by_restart_policy_and_by_what_waits_for_them() -> None:
    services = {
        "migrate": service("migrate", restart="no"),
        "static": service("static"),
        "web": service(
            "web",
            depends_on={"static": {"condition": "service_completed_successfully"}, "db": None},
        ),
    }
    assert projectscan.oneshots(services) == ["migrate", "static"]


def test_a_later_compose_file_merges_over_an_earlier_one() -> None:
    base = {"services": {"web": {"command": "uvicorn a:b", "ports": ["8000:8000"]}}}
    prod = {"services": {"web": {"healthcheck": {"test": "true"}}, "extra": {"image": "x"}}}
    merged = projectscan.merge_services([base, prod])
    assert sorted(merged) == ["extra", "web"]
    assert set(merged["web"].spec) == {"command", "ports", "healthcheck"}


def test_env_keys_from_interpolation_environment_and_env_files(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("REAL_ONLY=do-not-copy-me\nAPI_TOKEN=tok-real-123\n")
    doc = {
        "services": {
            "web": {
                "image": "app:${TAG:-latest}",
                "environment": {"LOG_LEVEL": "info", "DATABASE_URL": "${DATABASE_URL}"},
                "env_file": ".env",
            },
            "worker": {"environment": ["BROKER=redis://r:6379/0", "PASSTHROUGH"]},
            "escaped": {"command": "echo $$HOME ${REQUIRED:?set it}"},
        }
    }
    keys = projectscan.compose_env([doc], tmp_path)
    assert keys == {
        "TAG": "latest",
        "DATABASE_URL": "",
        "REQUIRED": "",
        "LOG_LEVEL": "info",
        "REAL_ONLY": "",  # a real env file gives its keys, never its values
        "API_TOKEN": "",
        "BROKER": "redis://r:6379/0",
        "PASSTHROUGH": "",
    }


def test_what_the_compose_runtime_sets_is_not_an_env_key(tmp_path: Path) -> None:
    doc = {"services": {"web": {"image": "${IMAGE_NAME}:${RELEASE_ID}", "env_file": "${ENV_FILE}"}}}
    assert projectscan.compose_env([doc], tmp_path) == {}


def test_a_built_service_needs_the_release_image_and_the_env_file() -> None:
    built = service("web", build=".", image="shop:latest", env_file=[".env"])
    assert projectscan.release_checks(built) == [
        "service web: image is shop:latest; each release's image is tagged by its id: "
        "set `image: ${IMAGE_NAME}:${RELEASE_ID}` in the production compose file",
        "service web: env_file is .env; deploytools hands compose the environment's env file "
        "as ENV_FILE: set `env_file: ${ENV_FILE}`",
    ]
    ready = service("web", build=".", image="${IMAGE_NAME:-shop}:${RELEASE_ID:-dev}")
    assert projectscan.release_checks(ready) == []
    assert projectscan.release_checks(service("db", image="postgres:16")) == []


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("SECRET_KEY", "dev-secret", "<change-me>"),
        ("SMTP_PASS", "hunter22", "<change-me>"),  # the built-in rules' globs, not only redact's
        ("GOOGLE_CREDENTIALS", "{}", "<change-me>"),
        ("API_TOKEN", "", "<change-me>"),
        ("LOG_LEVEL", "", "<change-me>"),
        ("LOG_LEVEL", "info", "info"),
        ("DATABASE_URL", "postgresql://app:pw123@db/app", "postgresql://app:<change-me>@db/app"),
    ],
)
def test_the_example_never_holds_a_secret(key: str, value: str, shown: str) -> None:
    assert projectscan.example_value(key, value) == shown


def test_the_compose_files_are_the_base_and_its_production_overlay(tmp_path: Path) -> None:
    for name in ("docker-compose.yml", "docker-compose.override.yml", "docker-compose.prod.yml"):
        (tmp_path / name).write_text("services: {}\n")
    assert [p.name for p in projectscan.find_compose_files(tmp_path)] == [
        "docker-compose.yml",
        "docker-compose.prod.yml",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("services:\n  web: a: b\n", "not valid YAML at line 2: mapping values are not"),
        ("- just\n- a list\n", "not a compose file"),
        ("services:\n  web: uvicorn\n", "not a compose file"),
    ],
)
def test_a_broken_compose_file_is_an_operator_error_naming_it(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    with pytest.raises(OperatorError) as caught:
        projectscan.load_compose(path)
    assert caught.value.problem.startswith(f"{path}: {problem}")


def test_an_alembic_ini_without_script_location_is_a_warning_not_a_guess(tmp_path: Path) -> None:
    (tmp_path / "alembic.ini").write_text("[alembic]\nsqlalchemy.url = sqlite://\n")
    found = projectscan.scan(tmp_path)
    assert found.alembic_ini is None
    [warning] = found.warnings
    assert warning.startswith(f"migrations not set up: {tmp_path / 'alembic.ini'}: [alembic] ")
    assert not [g for g in found.guesses if g.what == "migrations"]


def test_without_compose_the_runtime_is_process_and_the_config_loads(tmp_path: Path) -> None:
    from deploytools.config import environment, parse_deploy_file

    found = projectscan.scan(tmp_path)
    files, guesses = scaffold.plan(found)
    text = {f.path: f.text for f in files}["config/deploy.toml"]
    deploy_file = parse_deploy_file(text, "deploy.toml")
    assert deploy_file.project.default_environment == "prod"
    settings = environment(deploy_file, "prod", "deploy.toml", tmp_path)
    assert (settings.runtime, settings.compose, settings.celery) == ("process", None, None)
    assert str(guesses[0]) == "runtime: process (no compose file found) — add services"


@pytest.mark.parametrize(("name", "slug"), [("My Shop", "my-shop"), ("__", "app"), ("a.b", "a-b")])
def test_the_project_name_is_a_compose_project_name(name: str, slug: str) -> None:
    assert scaffold.slug(name) == slug


def test_the_example_names_the_keys_deploytools_reads_when_nothing_does(tmp_path: Path) -> None:
    found = projectscan.Scan(tmp_path, alembic_ini="alembic.ini", env={"PORT": "8000"})
    found.worker = service("worker", command="celery -A app worker")
    text, guesses = scaffold.env_example(found)
    assert text.splitlines()[1:] == [
        "PORT=8000",
        "DATABASE_URL=<change-me>",
        "CELERY_BROKER_URL=<change-me>",
    ]
    assert [str(g) for g in guesses] == [
        "database URL: DATABASE_URL (none found; backups and migrations read it) — set it",
        "celery broker: CELERY_BROKER_URL (none found; celery.verify reads it) — set it",
    ]
    found.env = {"SQLALCHEMY_DATABASE_URI": "sqlite://", "REDIS_URL": "redis://r"}
    assert scaffold.env_example(found)[1] == []
    config, named = scaffold.deploy_toml(found, "shop")
    assert 'url_key = "SQLALCHEMY_DATABASE_URI"' in config and 'broker_key = "REDIS_URL"' in config
    assert [g.what for g in named] == ["database URL", "celery broker"]
