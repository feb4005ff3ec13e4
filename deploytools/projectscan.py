"""What ``invoke init`` finds in a project: compose services, the Celery app, alembic, env keys.

Each finding is a guess, and each guess carries the reason a human should check it: the
scaffold (``deploytools.scaffold``) prints them one a line. Compose files are parsed as YAML
(PyYAML as invoke ships it) and must be readable: a broken one stops ``init`` before anything
is written, since every guess after it would be wrong.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from deploytools.config import read_text
from deploytools.db.location import script_location
from deploytools.env import file as envfile
from deploytools.errors import OperatorError

if TYPE_CHECKING:
    from deploytools.env.rules import EnvRules

COMPOSE_GLOBS = ("docker-compose*.yml", "docker-compose*.yaml", "compose*.yml", "compose*.yaml")
# A file compose merges over the base one for production (``-f base -f prod``).
PRODUCTION_MARKS = ("prod", "production")
# Compose reads ``$NAME``, ``${NAME}``, ``${NAME:-default}`` (and ``-``, ``?``, ``:?``, ``+``);
# ``$$`` is a literal dollar.
VARIABLE = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<default>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)
HTTP_SERVERS = ("uvicorn", "gunicorn", "hypercorn", "daphne", "granian", "waitress-serve")
# Images of the stack's servers, not of the app: never the backend nor the worker.
SERVER_IMAGES = ("postgres", "redis", "mysql", "mariadb", "rabbitmq", "memcached", "mongo")
# What the compose runtime sets in compose's environment itself (runtime/compose.py ``_env``):
# never an env file key.
COMPOSE_RUNTIME_VARIABLES = ("RELEASE_ID", "IMAGE_NAME", "ENV_FILE")
RELEASE_IMAGE = "${IMAGE_NAME}:${RELEASE_ID}"
SAMPLE_SUFFIXES = (".example", ".sample", ".template", ".dist")
PLACEHOLDER = "<change-me>"


@dataclass(frozen=True)
class Guess:
    """One line of what ``init`` guessed: ``what: value (why)``, and what to check if any."""

    what: str
    value: str
    why: str
    check: str = ""

    def __str__(self) -> str:
        line = f"{self.what}: {self.value} ({self.why})"
        return f"{line} — {self.check}" if self.check else line


@dataclass
class Service:
    name: str
    spec: dict[str, Any]

    @property
    def argv(self) -> list[str]:
        """The command (or entrypoint) as words; a string is split as a shell would."""
        words: list[str] = []
        for key in ("entrypoint", "command"):
            value = self.spec.get(key)
            if isinstance(value, str):
                try:
                    words += shlex.split(value)
                except ValueError:
                    words += value.split()
            elif isinstance(value, list):
                words += [str(w) for w in value]
        return words

    @property
    def image(self) -> str:
        return str(self.spec.get("image") or "")

    @property
    def is_server_image(self) -> bool:
        """A database or broker from a public image, not built from the app."""
        base = self.image.rsplit("/", 1)[-1].split(":", 1)[0].lower()
        return "build" not in self.spec and base in SERVER_IMAGES

    @property
    def healthcheck(self) -> list[str]:
        check = self.spec.get("healthcheck")
        if not isinstance(check, dict) or check.get("disable"):
            return []
        test = check.get("test")
        if isinstance(test, str):
            return test.split()
        return [str(w) for w in test] if isinstance(test, list) else []


@dataclass
class Scan:
    """Everything ``init`` found; ``warnings`` are guesses it could not make."""

    root: Path
    compose_files: list[str] = field(default_factory=list)
    backend: Service | None = None
    backend_port: str | None = None  # the published host port, or ``{VAR}`` from the env file
    probe_path: str | None = None
    worker: Service | None = None
    celery_app: str | None = None
    oneshots: list[str] = field(default_factory=list)
    alembic_ini: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # key -> value for the example
    guesses: list[Guess] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def find_compose_files(root: Path) -> list[Path]:
    """The base compose file first, then its production overlay; overrides and others are
    left out (compose reads ``*.override.*`` by itself, only when no file is named)."""
    found = sorted({p for pattern in COMPOSE_GLOBS for p in root.glob(pattern) if p.is_file()})
    base = [p for p in found if _stem_parts(p) == []]
    prod = [p for p in found if any(m in _stem_parts(p) for m in PRODUCTION_MARKS)]
    return base[:1] + prod[:1] if base or prod else []


def _stem_parts(path: Path) -> list[str]:
    """``docker-compose.prod.yml`` -> ``["prod"]``; ``compose.yaml`` -> ``[]``."""
    return path.name.split(".")[1:-1]


def load_compose(path: Path) -> dict[str, Any]:
    """A compose file as data; an operator error naming the file if it is not one."""
    yaml = yaml_module()
    fix = f"fix {path.name} (docker compose -f {path.name} config shows where), then run again"
    try:
        data = yaml.safe_load(read_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        raise OperatorError(f"{path}: not valid YAML{where}: {problem or exc}", fix) from None
    if data is None:
        data = {}
    services = data.get("services", {}) if isinstance(data, dict) else None
    if not isinstance(services, dict) or not all(isinstance(s, dict) for s in services.values()):
        raise OperatorError(f"{path}: not a compose file (no mapping of services)", fix)
    document: dict[str, Any] = data
    return document


def yaml_module() -> Any:
    """PyYAML as invoke ships it (its vendored copy, else the installed one): a YAML parser of
    the field with no dependency of deploytools' own. Untyped, hence ``getattr``."""
    from invoke import util

    return getattr(util, "yaml")  # noqa: B009


def merge_services(documents: list[dict[str, Any]]) -> dict[str, Service]:
    """Services as compose merges them: a later file's keys over an earlier file's."""
    merged: dict[str, dict[str, Any]] = {}
    for doc in documents:
        for name, spec in doc.get("services", {}).items():
            merged[str(name)] = {**merged.get(str(name), {}), **spec}
    return {name: Service(name, spec) for name, spec in merged.items()}


def http_server(service: Service) -> str | None:
    words = [Path(w).name for w in service.argv]
    return next((w for w in words if w in HTTP_SERVERS), None) or (
        "manage.py runserver" if "runserver" in words else None
    )


def pick_backend(services: dict[str, Service]) -> tuple[Service, str] | None:
    """The service that serves HTTP: an HTTP server command, published ports, a healthcheck."""
    best: tuple[int, Service, str] | None = None
    for service in services.values():
        if service.is_server_image or is_celery(service):
            continue
        reasons: list[str] = []
        score = 0
        if server := http_server(service):
            score, reasons = score + 4, [*reasons, f"runs {server}"]
        if service.spec.get("ports"):
            score, reasons = score + 2, [*reasons, "publishes a port"]
        if service.healthcheck:
            score, reasons = score + 1, [*reasons, "has a healthcheck"]
        if score and (best is None or score > best[0]):
            best = (score, service, ", ".join(reasons))
    return (best[1], best[2]) if best else None


def is_celery(service: Service) -> bool:
    words = [Path(w).name for w in service.argv]
    return "celery" in words and "worker" in words


def celery_app(argv: list[str]) -> str | None:
    """The ``-A``/``--app`` of a celery command line."""
    for i, word in enumerate(argv):
        if word in ("-A", "--app") and i + 1 < len(argv):
            return argv[i + 1]
        for prefix in ("--app=", "-A"):
            if word.startswith(prefix) and len(word) > len(prefix):
                return word[len(prefix) :].lstrip("=")
    return None


def published_port(service: Service) -> str | None:
    """The host side of the first published port; ``{VAR}`` when the env file sets it."""
    for entry in service.spec.get("ports") or []:
        if isinstance(entry, dict):
            host = str(entry.get("published", ""))
        else:
            # ``${PORT:-8000}:8000``: variables hold colons, so they are set aside first.
            names: list[str] = []

            def hold(match: re.Match[str], names: list[str] = names) -> str:
                names.append(match["braced"] or match["bare"] or "$")
                return f"@{len(names) - 1}@"

            parts = VARIABLE.sub(hold, str(entry)).rsplit("/", 1)[0].split(":")
            host = parts[-2] if len(parts) >= 2 else ""
            if held := re.fullmatch(r"@(\d+)@", host):
                return f"{{{names[int(held[1])]}}}"
        if host.isdigit():
            return host
    return None


def probe_path(service: Service) -> str | None:
    """The path the healthcheck asks, if it asks one over HTTP."""
    for word in service.healthcheck:
        for match in re.finditer(r"https?://[^\s'\"]+", word):
            path = urlsplit(match[0]).path
            if path:
                return path
    return None


def oneshots(services: dict[str, Service]) -> list[str]:
    """Services compose runs to completion: restart "no", or a completion others wait for."""
    found = {n for n, s in services.items() if str(s.spec.get("restart", "")) == "no"}
    for service in services.values():
        depends = service.spec.get("depends_on")
        if isinstance(depends, dict):
            for name, cond in depends.items():
                if isinstance(cond, dict) and "completed" in str(cond.get("condition", "")):
                    found.add(str(name))
    return sorted(found)


def compose_env(documents: list[dict[str, Any]], root: Path) -> dict[str, str]:
    """Keys the stack reads: interpolated variables, ``environment:`` and ``env_file:`` keys.

    Values only from the compose files themselves (a default or a literal), never from an env
    file; a secret gets a placeholder whatever it had.
    """
    keys: dict[str, str] = {}

    def add(key: str, value: str = "") -> None:
        if not keys.get(key):
            keys[key] = value

    for doc in documents:
        for name, default in variables(doc):
            if name not in COMPOSE_RUNTIME_VARIABLES:
                add(name, default)
        for spec in doc.get("services", {}).values():
            for key, value in _environment(spec.get("environment")):
                if key not in COMPOSE_RUNTIME_VARIABLES:
                    add(key, "" if value is None or VARIABLE.search(value) else value)
            for path in _env_files(spec.get("env_file")):
                for key, value in env_keys(root / path).items():
                    add(key, value)
    return keys


def variables(node: Any) -> list[tuple[str, str]]:
    """Every ``${NAME}`` (with its default, if any) in a parsed YAML document."""
    if isinstance(node, dict):
        return [v for key, value in node.items() for v in variables(key) + variables(value)]
    if isinstance(node, list):
        return [v for item in node for v in variables(item)]
    if not isinstance(node, str):
        return []
    found = []
    for match in VARIABLE.finditer(node):
        name = match["braced"] or match["bare"]
        if name:
            op = match["op"] or ""
            found.append((name, match["default"] or "" if "-" in op else ""))
    return found


def _environment(value: Any) -> list[tuple[str, str | None]]:
    if isinstance(value, dict):
        return [(str(k), None if v is None else str(v)) for k, v in value.items()]
    if isinstance(value, list):
        pairs = [str(item).partition("=") for item in value]
        return [(k, v if sep else None) for k, sep, v in pairs]
    return []


def _env_files(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value] if value else []
    return [str(i.get("path", "")) if isinstance(i, dict) else str(i) for i in items]


def env_keys(path: Path) -> dict[str, str]:
    """The keys of an env file; values only from a sample (``.env.example``), never a real one."""
    if not path.is_file():
        return {}
    try:
        doc = envfile.parse(path.read_bytes())
    except OSError:
        return {}
    sample = path.name.endswith(SAMPLE_SUFFIXES)
    return {k: v if sample else "" for k, v in doc.values().items()}


@cache
def builtin_rules() -> EnvRules:
    """The rules every project gets (no project file yet): their secret-name patterns."""
    from deploytools.env.rules import parse_rules, resolve

    path = Path("config/env.rules.toml")
    return resolve(parse_rules("", path), "prod", True, path)


def example_value(key: str, value: str) -> str:
    """What the example says: a placeholder for a secret, an empty value or a URL's password,
    else the value."""
    from deploytools.redact import url_password

    if not value or builtin_rules().is_secret(key):
        return PLACEHOLDER
    password = url_password(value) if "://" in value else None
    if password:
        return value.replace(f":{password}@", f":{PLACEHOLDER}@", 1)
    return value


def scan(root: Path) -> Scan:
    """What the project holds, as guesses; raises before anything is written if a compose file
    cannot be read."""
    result = Scan(root)
    files = find_compose_files(root)
    documents = [load_compose(p) for p in files]
    result.compose_files = [p.name for p in files]
    if files:
        result.guesses.append(
            Guess("compose files", ", ".join(result.compose_files), "found", "check the order")
        )
    services = merge_services(documents)
    _scan_services(result, services)
    env = compose_env(documents, root)
    for sample in sorted({*root.glob(".env"), *root.glob(".env.*")}):
        for key, value in env_keys(sample).items():
            if not env.get(key):
                env[key] = value
    result.env = {k: example_value(k, v) for k, v in env.items()}
    if result.env:
        result.guesses.append(
            Guess(
                "env keys",
                str(len(result.env)),
                "from the compose files and .env samples",
                "fill in the placeholders",
            )
        )
    _scan_alembic(result)
    return result


def _scan_services(result: Scan, services: dict[str, Service]) -> None:
    picked = pick_backend(services)
    if picked:
        service, why = picked
        result.backend = service
        result.guesses.append(Guess("backend service", service.name, why))
        result.backend_port = published_port(service)
        path = probe_path(service)
        result.probe_path = path or "/health"
        origin = "from its healthcheck" if path else "a guess"
        port = result.backend_port or "8000"
        result.guesses.append(
            Guess(
                "probe",
                f"GET http://127.0.0.1:{port}{result.probe_path}",
                origin,
                "check the path" + ("" if result.backend_port else " and the port"),
            )
        )
    elif services:
        result.warnings.append("no backend found (no HTTP server, published port or healthcheck)")
    worker = next((s for s in services.values() if is_celery(s)), None)
    if worker:
        result.worker = worker
        result.celery_app = celery_app(worker.argv)
        result.guesses.append(Guess("worker service", worker.name, "runs celery worker"))
        if result.celery_app:
            result.guesses.append(
                Guess("celery app", result.celery_app, "from the worker's command")
            )
    result.oneshots = oneshots(services)
    for name in result.oneshots:
        result.guesses.append(Guess("one-shot", name, "compose waits for it to exit 0"))
    for service in services.values():
        result.warnings += release_checks(service)
    checked = [s.name for s in services.values() if s.healthcheck]
    if checked:
        result.guesses.append(Guess("healthchecks", ", ".join(checked), "compose waits for them"))


def release_checks(service: Service) -> list[str]:
    """What a service built from the app needs for releases: its image named by the release
    (so a rollback finds the old one) and the env file deploytools hands compose."""
    if "build" not in service.spec:
        return []
    found = []
    image = service.image
    if "IMAGE_NAME" not in image or "RELEASE_ID" not in image:
        found.append(
            f"service {service.name}: image is {image or 'not set'}; each release's image is "
            f"tagged by its id: set `image: {RELEASE_IMAGE}` in the production compose file"
        )
    files = _env_files(service.spec.get("env_file"))
    if files and not any("ENV_FILE" in f for f in files):
        found.append(
            f"service {service.name}: env_file is {', '.join(files)}; deploytools hands compose "
            "the environment's env file as ENV_FILE: set `env_file: ${ENV_FILE}`"
        )
    return found


def _scan_alembic(result: Scan) -> None:
    ini = result.root / "alembic.ini"
    if not ini.is_file():
        result.warnings.append(
            "no alembic.ini at the project root: set database.alembic_ini or "
            "database.alembic_dir in config/deploy.toml if the project has migrations"
        )
        return
    try:
        location = script_location(ini, result.root)
    except OperatorError as exc:
        result.warnings.append(f"migrations not set up: {exc.problem} ({exc.fix})")
        return
    result.alembic_ini = "alembic.ini"
    where = location.relative_to(result.root.resolve()).as_posix()
    result.guesses.append(Guess("migrations", where, "alembic.ini's script_location"))
