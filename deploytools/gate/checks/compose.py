"""compose: the production compose files of a compose environment, structurally in Python
(always) and through ``docker compose config --quiet`` (when a Docker client is here; the
client alone is enough, no engine).

The structural part is the slip that compose itself never reports: a service the config
expects, or that the development compose file has (a Celery worker is the classic case),
missing from the production files. A development-only service is marked so in the
development file with ``x-dev-only: true``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deploytools.commands import compose as cmd
from deploytools.config import EnvironmentSettings
from deploytools.errors import CommandError
from deploytools.gate import composefile
from deploytools.gate.project import Project
from deploytools.gate.registry import Item, register
from deploytools.hosts.local import LocalHost
from deploytools.projectscan import COMPOSE_RUNTIME_VARIABLES

# Compose's development file names; one of them that is not a production file is compared.
DEV_FILES = (
    "compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml",
    "compose.override.yaml", "compose.override.yml",
    "docker-compose.override.yaml", "docker-compose.override.yml",
)  # fmt: skip
DEV_ONLY = "x-dev-only"
CONFIG_TIMEOUT = 60.0


def is_compose(settings: EnvironmentSettings) -> bool:
    return settings.runtime == "compose" and settings.compose is not None


@register("compose", needs=frozenset({"docker"}), applies=is_compose)
def check_compose(project: Project, env: str | None) -> list[Item]:
    """The production compose files: every expected service (config, development file) there,
    each with an image or build, a healthcheck and known depends_on; every ${VAR} given a
    value; then docker compose config --quiet."""
    assert env is not None
    settings = project.settings(env)
    assert settings.compose is not None
    data, paths = production(project, settings)
    directory = settings.path(settings.compose.directory)
    where = ", ".join(project.shown(p) for p in paths)
    prod = composefile.services(data)
    values = _env_values(project, settings)
    items = [
        *_expected(env, settings, prod, where),
        *_development(env, project, directory, paths, prod, where),
        *(item for name in prod for item in _service(env, name, prod, settings, where)),
        *_variables(env, data, set(values), where),
    ]  # fmt: skip
    if not any(item.status == "fail" for item in items):
        items.append(Item(env, "pass", f"{len(prod)} service(s) complete", where))
    items.append(_compose_config(env, settings, paths, values, where))
    return items


def production(
    project: Project, settings: EnvironmentSettings
) -> tuple[dict[str, Any], list[Path]]:
    """The environment's production files merged in order, and their paths."""
    assert settings.compose is not None
    directory = settings.path(settings.compose.directory)
    paths = [directory / name for name in settings.compose.files]
    data: dict[str, Any] = {}
    for path in paths:
        data = composefile.merge(data, composefile.read(path, project.shown(path)))
    return data, paths


def development_files(directory: Path, prod_paths: list[Path]) -> list[Path]:
    """The development compose files beside the production ones (not one of them)."""
    return [
        directory / name
        for name in DEV_FILES
        if directory / name not in prod_paths and (directory / name).is_file()
    ]


def _expected(
    env: str, settings: EnvironmentSettings, prod: Mapping[str, Any], where: str
) -> list[Item]:
    expected = {**dict.fromkeys(settings.services, "config services"),
                settings.database.migrate_service: "database.migrate_service"}  # fmt: skip
    return [
        Item(env, "fail", f"service {name!r} ({why}) is not in the production files", where)
        for name, why in expected.items()
        if name not in prod
    ]


def _development(
    env: str,
    project: Project,
    directory: Path,
    prod_paths: list[Path],
    prod: Mapping[str, Any],
    where: str,
) -> list[Item]:
    """Services of the development file(s) the production files lack (not marked dev-only)."""
    items = []
    for path in development_files(directory, prod_paths):
        shown = project.shown(path)
        for service, spec in composefile.services(composefile.read(path, shown)).items():
            if service not in prod and not spec.get(DEV_ONLY):
                items.append(
                    Item(
                        env,
                        "fail",
                        f"service {service!r} of {shown} is not in the production files: "
                        f"add it there, or mark it `{DEV_ONLY}: true` in {shown}",
                        where,
                    )
                )
    return items


def _service(
    env: str, name: str, prod: Mapping[str, Any], settings: EnvironmentSettings, where: str
) -> list[Item]:
    """One production service: image or build, a healthcheck, depends_on on known services,
    and limits where the environment's compose.require_limits asks for them."""
    spec = prod[name]
    at = f"{where} (services.{name})"
    items = []
    if not spec.get("image") and not spec.get("build"):
        items.append(Item(env, "fail", f"service {name!r} has neither image nor build", at))
    check = spec.get("healthcheck")
    conf = settings.services.get(name)
    # An HTTP probe tells as well; a one-shot is done when it exits. Without either, a deploy
    # waits for "running" only (and celery.verify for a worker): a warning, --strict fails it.
    told = conf is not None and (conf.oneshot or conf.probe.url is not None)
    one_shot = told or str(spec.get("restart", "")) == "no"
    if not one_shot and not check:
        items.append(Item(env, "warn", f"service {name!r} has no healthcheck: a deploy can only "
                          "wait for it to be running", at))  # fmt: skip
    elif not one_shot and isinstance(check, Mapping) and check.get("disable"):
        items.append(Item(env, "warn", f"service {name!r} has its healthcheck disabled", at))
    missing = _limits_missing(spec) if settings.compose and settings.compose.require_limits else []
    if missing and not spec.get("profiles"):
        items.append(Item(env, "fail", f"service {name!r} has no {' and no '.join(missing)} limit "
                          "(compose.require_limits): set deploy.resources.limits", at))  # fmt: skip
    for other in composefile.depends_on(spec):
        if other not in prod:
            items.append(Item(env, "fail", f"service {name!r} depends on {other!r}, which the "
                              "production files do not have", at))  # fmt: skip
    return items


def _limits_missing(spec: Mapping[str, Any]) -> list[str]:
    """Which of a memory and a cpu limit a service lacks (compose's deploy.resources.limits, or
    the older mem_limit and cpus keys)."""
    limits: Any = spec
    for key in ("deploy", "resources", "limits"):
        limits = limits.get(key) if isinstance(limits, Mapping) else None
    limits = limits if isinstance(limits, Mapping) else {}
    found = {"memory": limits.get("memory") or spec.get("mem_limit"),
             "cpu": limits.get("cpus") or spec.get("cpus")}  # fmt: skip
    return [kind for kind, value in found.items() if not value]


def _variables(env: str, data: Any, keys: set[str], where: str) -> list[Item]:
    given = keys | set(COMPOSE_RUNTIME_VARIABLES)
    missing = sorted(set(composefile.required_variables(data)) - given)
    return [
        Item(env, "fail", f"${{{name}}} has no default and no value in the env file: compose "
             f"would use an empty string (give it one: ${{{name}:-value}}, or set {name})", where)
        for name in missing
    ]  # fmt: skip


def _env_values(project: Project, settings: EnvironmentSettings) -> dict[str, str]:
    """The values of the env file compose gets: the real one here, else the example's."""
    doc = project.env_files.get(settings.name)
    if doc is None:
        from deploytools.env import file as envfile

        path = settings.path(settings.env_example)
        doc = envfile.parse(path.read_bytes()) if path.is_file() else None
    return doc.values() if doc is not None else {}


def _compose_config(
    env: str,
    settings: EnvironmentSettings,
    paths: list[Path],
    values: Mapping[str, str],
    where: str,
) -> Item:
    """``docker compose config --quiet`` with the files and the env file (a copy compose reads
    as deploytools hands it over, in a private temporary directory, removed after)."""
    if shutil.which("docker") is None:
        return Item(env, "could-not-run", "no Docker client here: docker compose config not run "
                    "(the structural check above ran in Python)", where)  # fmt: skip
    from deploytools.env import compose as envcompose

    assert settings.compose is not None
    with tempfile.TemporaryDirectory(prefix="deploytools-verify-") as scratch:
        env_file = Path(scratch) / "compose.env"
        env_file.write_text(envcompose.render(values, settings.env_file), encoding="utf-8")
        env_file.chmod(0o600)
        project_ = cmd.Project(
            settings.compose.project_name,
            tuple(str(p) for p in paths),
            str(env_file),
            str(settings.path(settings.compose.directory)),
        )
        given = {"RELEASE_ID": "verify", "IMAGE_NAME": settings.compose.image_name,
                 "ENV_FILE": str(env_file)}  # fmt: skip
        try:
            done = LocalHost().run(
                cmd.config_quiet(project_), env=given, check=False, timeout=CONFIG_TIMEOUT
            )
        except CommandError as exc:
            return Item(env, "fail", f"docker compose config: {exc.problem}", where)
    if done.ok:
        return Item(env, "pass", "docker compose config --quiet accepts the files", where)
    said = done.stderr.strip().splitlines()
    return Item(env, "fail", f"docker compose config: {said[-1] if said else 'failed'}", where)
