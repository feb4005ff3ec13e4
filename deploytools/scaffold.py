"""``invoke init``: ``tasks.py``, ``config/deploy.toml`` and an env example from a project scan.

The files are rendered from ``deploytools.projectscan``'s guesses and written only where no
file is: an existing one is left as it is and named, so running ``init`` twice, or after hand
edits, loses nothing. Every guess is printed with what to check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from deploytools.projectscan import PLACEHOLDER, Guess, Scan

ENV = "prod"
TASKS_PY = '''\
"""invoke entry point: the whole namespace comes from deploytools."""

from deploytools.tasks import ns

__all__ = ["ns"]
'''
# The env files hold the secrets: never committed (their examples are).
GITIGNORE = (
    "# Written by `invoke init`: env files hold secrets (their examples are committed).\n*.env\n"
)
URL_KEYS = ("DATABASE_URL", "DATABASE_URI", "DB_URL", "SQLALCHEMY_DATABASE_URI", "POSTGRES_URL")
BROKER_KEYS = ("CELERY_BROKER_URL", "BROKER_URL", "CELERY_BROKER", "REDIS_URL")


@dataclass(frozen=True)
class Planned:
    path: str  # relative to the project root
    text: str


def slug(name: str) -> str:
    """A compose project name (lower case, digits, ``-``/``_``) from the directory's name."""
    text = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    return text or "app"


def toml(value: object) -> str:
    """A TOML value: strings and lists of strings (JSON's escapes are TOML's)."""
    return json.dumps(value)


def pick_key(env: dict[str, str], candidates: tuple[str, ...]) -> str | None:
    return next((k for k in candidates if k in env), None)


def deploy_toml(scan: Scan, name: str) -> tuple[str, list[Guess]]:
    """The config text, and the guesses made while writing it (keys the env names)."""
    guesses: list[Guess] = []
    runtime = "compose" if scan.compose_files else "process"
    lines = [
        "# Written by `invoke init`: every guess is printed with what to check.",
        "# Every key is checked (an unknown key is an error); see the README for the others.",
        "",
        "[project]",
        f"name = {toml(name)}",
        f"default_environment = {toml(ENV)}",
        "",
        f"[environments.{ENV}]",
        f'env_file = "config/{ENV}.env"',
        f'env_example = "config/{ENV}.env.example"',
        f"runtime = {toml(runtime)}",
        "production = true",
    ]
    if scan.compose_files:
        compose = (
            f"project_name = {toml(name)}, files = {toml(scan.compose_files)}, "
            f"image_name = {toml(name)}"
        )
        lines.append(f"compose = {{ {compose} }}")
    lines += [
        "# Remote hosts (none: this machine):",
        f"# [[environments.{ENV}.hosts]]",
        '# name = "web-1"',
        '# address = "web-1.example.internal"',
        '# user = "deploy"',
        '# roles = ["web"]  # what it runs; a service with roles runs only where they are',
        "# primary = true  # exactly one host when there are several (lock, backup, migrations)",
    ]
    database = []
    url_key = pick_key(scan.env, URL_KEYS)
    if url_key and url_key != "DATABASE_URL":
        database.append(f"url_key = {toml(url_key)}")
        guesses.append(Guess("database URL", url_key, "an env key named like one", "check it"))
    if scan.backend and scan.compose_files and scan.backend.name != "backend":
        database.append(f"migrate_service = {toml(scan.backend.name)}")
        guesses.append(
            Guess("migrations run in", scan.backend.name, "the backend's image", "check it")
        )
    if database:
        lines += ["", f"[environments.{ENV}.database]", *database]
    if scan.worker:
        lines += ["", f"[environments.{ENV}.celery]"]
        if scan.celery_app:
            lines.append(f"app = {toml(scan.celery_app)}")
        broker = pick_key(scan.env, BROKER_KEYS)
        if broker and broker != "CELERY_BROKER_URL":
            lines.append(f"broker_key = {toml(broker)}")
            guesses.append(Guess("celery broker", broker, "an env key named like one", "check"))
    if scan.backend:
        port = scan.backend_port or "8000"
        url = f"http://127.0.0.1:{port}{scan.probe_path}"
        lines += ["", f"[environments.{ENV}.services.{scan.backend.name}.probe]"]
        lines.append(f"url = {toml(url)}")
    if runtime == "process":
        lines += [
            "",
            "# Process runtime: each service's command ({python}: the app's interpreter, the",
            "# project's .venv if it has one; {NAME}: an env file key), e.g.",
            f"# [environments.{ENV}.services.web]",
            '# command = ["{python}", "-m", "uvicorn", "app.main:app", "--port", "{PORT}"]',
        ]
    return "\n".join(lines) + "\n", guesses


def env_example(scan: Scan) -> tuple[str, list[Guess]]:
    """The example's text: the keys found, and the ones deploytools itself reads (the database
    URL when there are migrations, the broker when there is a worker) if none names them."""
    env = dict(scan.env)
    guesses = []
    needed = [
        (bool(scan.alembic_ini), URL_KEYS, "database URL", "backups and migrations read it"),
        (scan.worker is not None, BROKER_KEYS, "celery broker", "celery.verify reads it"),
    ]
    for wanted, keys, what, why in needed:
        if wanted and pick_key(env, keys) is None:
            env[keys[0]] = PLACEHOLDER
            guesses.append(Guess(what, keys[0], f"none found; {why}", "set it"))
    lines = ["# Written by `invoke init`: the keys the stack uses; fill in the placeholders."]
    lines += [f"{key}={value}" for key, value in env.items()]
    return "\n".join(lines) + "\n", guesses


def plan(scan: Scan) -> tuple[list[Planned], list[Guess]]:
    """The files ``init`` would write (whether or not they exist) and the extra guesses."""
    name = slug(scan.root.resolve().name)
    config, guesses = deploy_toml(scan, name)
    example, added = env_example(scan)
    guesses += added
    files = [
        Planned("tasks.py", TASKS_PY),
        Planned("config/deploy.toml", config),
        Planned(f"config/{ENV}.env.example", example),
        Planned("config/.gitignore", GITIGNORE),
    ]
    if not scan.compose_files:
        guesses.insert(0, Guess("runtime", "process", "no compose file found", "add services"))
    return files, guesses


def write(root: Path, files: list[Planned]) -> tuple[list[str], list[str]]:
    """Write each file that does not exist yet (exclusive create); the written and the left."""
    written, left = [], []
    for item in files:
        target = root / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with target.open("x", encoding="utf-8") as handle:
                handle.write(item.text)
        except FileExistsError:
            left.append(item.path)
            continue
        written.append(item.path)
    return written, left
