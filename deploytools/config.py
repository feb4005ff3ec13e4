"""The deployment as data: ``config/deploy.toml`` loaded into frozen pydantic models.

Precedence, lowest first: model defaults < ``[defaults]`` in the file < ``[environments.NAME]``
< invoke config (``invoke.yaml``, ``INVOKE_DEPLOYTOOLS_*`` env vars) < command-line flags.
Every layer is a nested mapping merged onto the one below before validation, so one model
validates the result and every error can name the file and the key path.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from deploytools.configpath import DEFAULT_CONFIG, find_config
from deploytools.errors import OperatorError
from deploytools.hosts.base import COMMAND_TIMEOUT

if TYPE_CHECKING:
    from deploytools.pipeline.rollout import RolloutPolicy

ENV_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
SERVICE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A host's name and user: (pattern, most characters, what comes first) for the message.
WORDS = {
    "name": (re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"), 63, "a letter or digit"),
    "user": (re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}"), 32, "a letter or '_'"),
}
ROLE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
DNS_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
DEFAULT_ROLE = "web"
# An image reference's registry host and path components (docker's reference grammar).
REGISTRY_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"(?::[0-9]{1,5})?"
)
REGISTRY_PATH = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
RUN_ONLY = "trust_new_hosts"
RETIRED = {"parallelism": "rollout.max_parallel"}  # key -> what took its place
M = TypeVar("M", bound="BaseModel")


class Model(BaseModel):
    """Frozen, strict about unknown keys: a typo in the config is an error, not a default."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ProbeSettings(Model):
    """How to know a service is healthy: compose health and/or an HTTP probe."""

    url: str | None = None
    expect_status: int = 200
    json_fields: dict[str, str | int | bool] = Field(default_factory=dict)
    timeout: float = Field(60.0, gt=0)
    interval: float = Field(0.1, gt=0, le=5)
    consecutive: int = Field(2, ge=1)
    request_timeout: float = Field(2.0, gt=0)
    # Once healthy, it must stay so (probes passing, same process, no restart) this long before
    # it counts: Swarm's update `monitor` (5 s) and Nomad's `min_healthy_time` do the same.
    min_healthy: float = Field(5.0, ge=0, le=600)


class ServiceSettings(Model):
    """A service of the stack; ``command`` is used by the process runtime."""

    command: list[str] = Field(default_factory=list)
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    compose_health: bool = True
    # A one-shot (a migration, collectstatic) is done when it exits 0. None: the runtime says
    # (compose: restart policy "no", or the target of a service_completed_successfully).
    oneshot: bool | None = None
    # The host roles that run it (None: every host of the environment).
    roles: list[str] | None = None

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_roles(value)

    @model_validator(mode="after")
    def _one_shot_has_no_probe(self) -> ServiceSettings:
        if self.oneshot and self.probe.url:
            raise ValueError(
                "a one-shot service is done when it exits 0 and has no HTTP probe: "
                "remove probe.url or oneshot"
            )
        return self


class ComposeSettings(Model):
    files: list[str] = Field(default_factory=lambda: ["docker-compose.prod.yml"])
    project_name: str
    directory: str = "."
    image_name: str = "exampleapp"
    build_args: dict[str, str] = Field(default_factory=dict)
    # Build inputs git does not track (e.g. a wheelhouse), relative to ``directory``: a
    # rollback that rebuilds in a git worktree of its tag takes them from the working tree.
    untracked_inputs: list[str] = Field(default_factory=list)
    # Free space Docker's data root must keep beyond the images of a release about to start:
    # its containers' writable layers and logs grow there (a full disk crash-loops them).
    min_free_mb: int = Field(256, ge=0)
    # Where a release's images go when the environment has several hosts: pushed there once
    # from the primary, which built them, and pulled by the others. None: streamed engine to
    # engine over SSH (docker save | docker load).
    registry: RegistrySettings | None = None
    # `invoke verify` fails a service the deploy starts (no profile) that has no memory and
    # cpu limits (deploy.resources.limits, or mem_limit/cpus): one runaway container must not
    # starve the others of a host.
    require_limits: bool = False

    @field_validator("registry", mode="before")
    @classmethod
    def _registry_url(cls, value: Any) -> Any:
        """``registry = "host/ns"`` is short for ``registry = { url = "host/ns" }``."""
        return {"url": value} if isinstance(value, str) else value


class RegistrySettings(Model):
    """A registry and namespace (``host[:port][/namespace]``); with credentials, the NAMES of
    the env file's keys that hold them (never a value in this committed file)."""

    url: str
    user_key: str | None = None
    password_key: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        check_registry(value)
        return value

    @field_validator("user_key", "password_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None and not ENV_KEY.fullmatch(value):
            raise ValueError(f"{value!r}: name a key of the env file (A-Z, a-z, 0-9, _)")
        return value

    @model_validator(mode="after")
    def _both_keys(self) -> RegistrySettings:
        if (self.user_key is None) != (self.password_key is None):
            raise ValueError(
                "give both user_key and password_key (the env file's keys), or neither"
            )
        return self

    @property
    def server(self) -> str:
        """The registry's host[:port], as ``docker login`` takes it."""
        return self.url.partition("/")[0]


def check_registry(value: str) -> None:
    """A registry and namespace an image reference may start with: ``host[:port][/path]``,
    as docker parses it (a host with a dot or a port, or ``localhost``; lower-case path
    components), with no scheme, tag or digest."""
    if "://" in value:
        raise ValueError(
            f"registry {value!r}: write it without a scheme, e.g. registry.example.com:5000/team"
            " (docker chooses https, or http for a registry on 127.0.0.0/8)"
        )
    host, _, path = value.partition("/")
    if not REGISTRY_HOST.fullmatch(host) or not ("." in host or ":" in host or host == "localhost"):
        raise ValueError(
            f"registry {value!r}: {host!r} is not a registry host; write host[:port][/namespace]"
            " with a host that has a dot or a port (or localhost), e.g. 127.0.0.1:5000/team"
        )
    if path and not all(REGISTRY_PATH.fullmatch(part) for part in path.split("/")):
        raise ValueError(
            f"registry {value!r}: the namespace {path!r} may only hold lower-case letters,"
            " digits and single . _ - between them, in /-separated parts (no tag, no digest)"
        )


class DatabaseSettings(Model):
    url_key: str = "DATABASE_URL"
    backup_dir: str = "backups"
    retention: int = Field(7, ge=1)
    format: Literal["custom", "directory"] = "custom"
    jobs: int = Field(1, ge=1, le=64)
    dump_via_service: str | None = None
    min_free_mb: int = Field(100, ge=0)
    # Where env.py is: alembic_dir (relative to app_dir) if set, else alembic_ini's
    # script_location (deploytools.db.location).
    alembic_dir: str | None = None
    alembic_ini: str = "alembic.ini"
    # Compose runtime: the service whose image runs `alembic` in a one-off container.
    migrate_service: str = "backend"
    lock_timeout_ms: int = Field(5000, ge=0)
    statement_timeout_ms: int = Field(600_000, ge=0)
    lock_retries: int = Field(3, ge=0)
    # Free space required before a dump: pg_database_size x dump_size_ratio + min_free_mb.
    dump_size_ratio: float = Field(1.0, gt=0, le=10)
    # Bound for one dump, verification or restore (a large database needs more than a command).
    dump_timeout: float = Field(3600.0, gt=0)


class CelerySettings(Model):
    # Where the app's Celery app is defined (``module:attribute``): named in the fix that says
    # where register_canary goes. deploytools never imports it.
    app: str | None = None
    broker_key: str = "CELERY_BROKER_URL"
    # Workers that must answer, over the whole environment: every host's workers answer through
    # the one broker, so with several hosts this is their sum (one number, not one per host).
    expected_workers: int = Field(1, ge=1)
    # The check starts as the workers do: a real one needs seconds to its first pong (a Celery
    # 5.3 worker about 3 s on a loaded machine, its mingle alone waits 1 s). The ping returns
    # as soon as expected_workers answered, so only a failing check waits it out.
    ping_timeout: float = Field(10.0, gt=0)
    # Sent to each worker that registered it (deploytools_canary.register_canary); a worker
    # without it is checked by when it started instead.
    canary_task: str = "deploytools.canary"
    canary_timeout: float = Field(10.0, gt=0)
    required_tasks: list[str] = Field(default_factory=list)
    # An idempotent task of the app, sent to each worker with these arguments: it must succeed
    # within canary_timeout (a work round trip, with no code added to the app).
    roundtrip_task: str | None = None
    roundtrip_args: list[Any] = Field(default_factory=list)
    roundtrip_kwargs: dict[str, Any] = Field(default_factory=dict)
    backend_key: str = "CELERY_RESULT_BACKEND"
    # Server-less local mode (broker "filesystem://"): queue/, control/ and results/ live under
    # the directory in this env key (relative paths: from app_dir, where the worker runs).
    fs_root_key: str = "CELERY_FS_ROOT"
    fs_root_default: str = "var/celery"
    # After the expected workers answered, listen this long for more: a stale worker left
    # behind by an earlier release answers within it and is then checked like the others.
    reply_window: float = Field(0.3, ge=0, le=10)


class ReleaseSettings(Model):
    # Release artifacts kept on each host: those of the last ``keep`` good releases (deploys
    # and rollbacks that ended ok, distinct tags) and the one running; older ones are pruned.
    keep: int = Field(5, ge=1)
    # Process runtime: each release gets a virtualenv of its own, made from this requirements
    # file of its tree (relative to app_dir) and shared by releases whose file is the same
    # (deploytools.runtime.venv). None: every release runs on one interpreter's packages.
    venv: str | None = None
    # Remote hosts get that virtualenv's packages as wheels made once per run on the control
    # machine, installed there with no index (deploytools.runtime.wheels): for hosts that
    # cannot reach one. Strict: "yes" or 1 is a typo here, not a true.
    wheels: bool = Field(False, strict=True)

    @model_validator(mode="after")
    def _wheels_of_a_venv(self) -> ReleaseSettings:
        if self.wheels and self.venv is None:
            raise ValueError(
                "wheels = true ships a release virtualenv's packages, but releases.venv is not "
                'set: set releases.venv = "requirements.txt" (the release\'s requirements '
                "file) too, or remove wheels"
            )
        return self

    @field_validator("venv")
    @classmethod
    def _venv_inside_the_release(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = PurePosixPath(value).parts
        outside = value.startswith("/") or ".." in parts or any(c in value for c in "\\:")
        if outside or not value.strip(" ./"):
            raise ValueError(
                f"{value!r} is not a file of the release: give the requirements file's path "
                "relative to app_dir (e.g. requirements.txt), without '..'"
            )
        return value


class HostSettings(Model):
    """A remote machine of an environment, reached over SSH with strict host keys.

    Every field that reaches an SSH command line or a message is checked here, so that no
    value from the file can carry shell syntax to a host.
    """

    name: str
    address: str
    port: int = Field(22, ge=1, le=65535)
    user: str = "deploy"
    key_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    root: str = "/srv/deploytools"
    # What the host does; a service without roles runs on every host. Kamal's default too: a
    # host listed without a role is a web server.
    roles: list[str] = Field(default_factory=lambda: [DEFAULT_ROLE], min_length=1)
    # Where the site-wide stages run (lock, backup, migrations, journal): exactly one host of
    # an environment with several; a single host is the primary without saying so.
    primary: bool = False
    # Values this host's processes get over the env file's (a port, a worker's concurrency):
    # never a secret, since this file is committed (the env file holds those).
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [key for key in value if not ENV_KEY.fullmatch(key)]
        if bad:
            names = ", ".join(map(repr, bad))
            raise ValueError(f"env key(s) {names}: write NAME with A-Z, a-z, 0-9, _")
        return value

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        return check_roles(value)

    @field_validator("name", "user")
    @classmethod
    def _word(cls, value: str, info: ValidationInfo) -> str:
        pattern, most, first = WORDS[str(info.field_name)]
        if not pattern.fullmatch(value):
            raise ValueError(
                f"a {info.field_name} may only hold letters, digits, '.', '_' and '-'"
                f" (at most {most}), starting with {first}"
            )
        return value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        check_address(value)
        return value

    @property
    def where(self) -> str:
        """How messages name it: its name and how it is reached."""
        return f"{self.name} ({self.user}@{self.address}:{self.port})"


def check_address(value: str) -> None:
    """A DNS name, an IPv4 or an IPv6 literal (bare: no brackets, no port, no user)."""
    if value.startswith("[") and value.endswith("]"):
        raise ValueError("write an IPv6 address without brackets (the port is `port`)")
    if ":" in value:
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            raise ValueError(
                "not an IPv6 address; a DNS name or IPv4 address has no ':' (the port is"
                " `port`, the user is `user`)"
            ) from None
        return
    if value.replace(".", "").isdigit():
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError("not an IPv4 address (four numbers 0-255)") from None
        return
    labels = value[:-1].split(".") if value.endswith(".") else value.split(".")
    if len(value) > 253 or not all(DNS_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            "not a DNS name or IP address: letters, digits, '-' and '_' in dot-separated"
            " labels of at most 63 (no spaces, no '@' or ':': the user and port are keys)"
        )


def check_roles(roles: list[str]) -> list[str]:
    """Role names are words that config and messages show: checked like other names."""
    for role in roles:
        if not ROLE_NAME.fullmatch(role):
            raise ValueError(
                f"role name {role!r} may only hold lower-case letters, digits, '_' and '-',"
                " starting with a letter"
            )
    if len(set(roles)) != len(roles):
        raise ValueError("a role is named twice")
    return roles


class RolloutSettings(Model):
    """How the per-host stages go over the hosts: at most ``max_parallel`` at once, in
    batches of ``batch_size``, ``canary`` one host first, stopping when more than ``max_fail``
    hosts failed (then ``on_failure``)."""

    # Hosts worked on at once. SSH sessions mostly wait on the hosts: 8 is what the benchmark
    # runs and more than Ansible's 5 forks, yet a bounded number of threads and connections.
    max_parallel: int = Field(8, ge=1, le=256)
    # Hosts per batch: a count, or "N%" of the run's hosts (floored, at least 1). "100%": one
    # batch, as Kamal boots every host unless boot.limit is set.
    batch_size: int | str = "100%"
    pause: float = Field(0.0, ge=0, le=86400)  # seconds between batches
    canary: bool = False  # one host alone first, then the batches
    # Failed hosts (unreachable ones included) the rollout tolerates: a count, or "N%" of the
    # run's hosts (floored). Exceeded when more hosts than that failed.
    max_fail: int | str = 0
    on_failure: Literal["rollback", "halt"] = "rollback"

    @field_validator("batch_size", "max_fail", mode="before")
    @classmethod
    def _count_or_percent(cls, value: Any, info: ValidationInfo) -> Any:
        """Checked at load as the rollout reads it (``rollout.resolve_count``)."""
        from deploytools.pipeline.rollout import resolve_count

        least = 1 if info.field_name == "batch_size" else 0
        try:
            resolve_count(value, 100, key=f"rollout.{info.field_name}", minimum=least)
        except OperatorError as exc:
            raise ValueError(f"{exc.problem}; {exc.fix}") from None
        return value

    def policy(self, hosts: int) -> RolloutPolicy:
        """These settings for a run on ``hosts`` hosts, counts and percentages resolved."""
        from deploytools.pipeline.rollout import RolloutPolicy

        return RolloutPolicy.resolve(hosts, **self.model_dump())


class TimeoutSettings(Model):
    command: float = Field(COMMAND_TIMEOUT, gt=0)
    connect: float = Field(10.0, gt=0)
    health: float = Field(120.0, gt=0)
    stop: float = Field(20.0, gt=0)
    query: float = Field(30.0, gt=0)  # a status, log or version query to a runtime
    # How long an undo waits for a Docker engine that went away (restarted) to answer again.
    engine: float = Field(60.0, gt=0)
    lock_ttl: float = Field(3600.0, gt=0)
    # One command making a release's virtualenv (releases.venv): an install may download and
    # build packages, far longer than a command.
    venv: float = Field(900.0, gt=0)


@dataclass(frozen=True)
class Layers:
    """Where settings came from: the config file (relative to the project root) and what was
    merged over it. Kept so that a release's own deploy.toml (``deploytools.releaseconfig``)
    gets the same invoke config and command line as today's."""

    config_file: str = DEFAULT_CONFIG
    overrides: Mapping[str, Any] = field(default_factory=dict)
    cli: Mapping[str, Any] = field(default_factory=dict)


class EnvironmentSettings(Model):
    """One environment (local, staging, prod, ...), with defaults already merged in."""

    name: str
    env_file: str
    env_example: str
    # The project's env rules, over the built-in ones; the default file may be absent.
    env_rules: str = "config/env.rules.toml"
    production: bool = False
    runtime: Literal["compose", "process"]
    app_dir: str = "."
    # Process runtime: the app's interpreter, for the services' {python} and for alembic
    # (relative: from the release's directory, then app_dir; default: the release's .venv,
    # then app_dir's, then the interpreter running deploytools). Never deploytools' own venv
    # when the app has one: the toolkit lives beside the app (ProcessRuntime.app_python).
    python: str | None = None
    # process runtime: directories of app_dir that every release shares (data, not code)
    shared_dirs: list[str] = Field(default_factory=lambda: ["var"])
    state_dir: str = ".deploytools"
    compose: ComposeSettings | None = None
    services: dict[str, ServiceSettings] = Field(default_factory=dict)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    releases: ReleaseSettings = Field(default_factory=ReleaseSettings)
    celery: CelerySettings | None = None
    hosts: list[HostSettings] = Field(default_factory=list)
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    # --trust-new-hosts: a run's choice (command line, invoke config), never the file's.
    trust_new_hosts: bool = False
    root: Path = Path(".")
    _layers: Layers = PrivateAttr(default_factory=Layers)

    @field_validator("services")
    @classmethod
    def _service_names(cls, value: dict[str, ServiceSettings]) -> dict[str, ServiceSettings]:
        for name in value:
            if not SERVICE_NAME.match(name):
                raise ValueError(f"service name {name!r} may only hold letters, digits, . _ -")
        return value

    @model_validator(mode="after")
    def _hosts_agree(self) -> EnvironmentSettings:
        names = [h.name for h in self.hosts]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"host name(s) {', '.join(twice)} used twice: give each its own")
        places = [(h.address.lower(), h.port) for h in self.hosts]
        same = sorted({f"{a}:{p}" for a, p in places if places.count((a, p)) > 1})
        if same:
            raise ValueError(
                f"two hosts are the same machine ({', '.join(same)}): a deploy would run twice"
                " there; list it once, with all of its roles"
            )
        primaries = [h.name for h in self.hosts if h.primary]
        if len(self.hosts) > 1 and len(primaries) != 1:
            said = f"{', '.join(primaries)} are all" if primaries else "none of them is"
            raise ValueError(
                f"exactly one host must be primary = true ({said}; hosts: {', '.join(names)})"
            )
        if self.hosts:
            have = {r for h in self.hosts for r in h.roles}
            for service, conf in self.services.items():
                lacking = [r for r in conf.roles or [] if r not in have]
                if lacking:
                    raise ValueError(
                        f"service {service!r} runs on role(s) {', '.join(lacking)} that no host"
                        f" has (the hosts' roles: {', '.join(sorted(have))})"
                    )
        return self

    @property
    def primary_host(self) -> HostSettings:
        """The host of the site-wide stages; only for a remote environment (``remote``)."""
        for host in self.hosts:
            if host.primary or len(self.hosts) == 1:
                return host
        raise ValueError(f"environment {self.name} has no hosts: it runs on this machine")

    def services_on(self, host: str, names: list[str]) -> list[str] | None:
        """Of ``names``, the services host ``host`` runs: those whose ``roles`` it has (a service
        without roles runs everywhere). None when that is all of them, or when ``host`` is not
        one of the environment's (this machine runs everything). The deploy and stack.* both
        ask this, so a host runs and shows the same services either way."""
        conf = next((h for h in self.hosts if h.name == host), None)
        if conf is None:
            return None
        mine = [
            name for name in names
            if (roles := getattr(self.services.get(name), "roles", None)) is None
            or set(roles) & set(conf.roles)
        ]  # fmt: skip
        return None if mine == names else mine

    def hosts_with(self, role: str) -> list[HostSettings]:
        """The hosts that have ``role``, in the file's order."""
        return [h for h in self.hosts if role in h.roles]

    def service_hosts(self, service: str) -> list[HostSettings]:
        """The hosts that run ``service``: those with one of its roles, or all of them."""
        roles = self.services[service].roles if service in self.services else None
        if roles is None:
            return list(self.hosts)
        return [h for h in self.hosts if set(h.roles) & set(roles)]

    def path(self, relative: str) -> Path:
        """A path from the config, made absolute against the project root."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def remote(self) -> bool:
        return bool(self.hosts)

    @property
    def layers(self) -> Layers:
        return self._layers


class ProjectSettings(Model):
    name: str
    description: str = ""
    # The environment of a task run without --env (nor deploytools.env in invoke config).
    default_environment: str | None = None


class DeployFile(Model):
    """The shape of ``deploy.toml`` before environments are merged with defaults."""

    project: ProjectSettings
    defaults: dict[str, Any] = Field(default_factory=dict)
    environments: dict[str, dict[str, Any]]


def check_env_name(name: str) -> str:
    if not ENV_NAME.match(name):
        raise OperatorError(
            f"environment name {name!r} is not allowed",
            "use lower-case letters, digits, '-' or '_' (e.g. --env prod)",
        )
    return name


def read_text(path: Path, *, missing: OperatorError | None = None) -> str:
    """A config file's text; every way of failing is an operator error naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing is not None:
            raise missing from None
        raise OperatorError(f"{path} not found", "check the path") from None
    except OSError as exc:
        raise OperatorError(
            f"cannot read {path}: {exc.strerror}", "check the path and its permissions"
        ) from None
    except UnicodeDecodeError:
        raise OperatorError(f"cannot read {path}: not UTF-8 text", "save it as UTF-8") from None


def parse_toml(text: str, path: str | Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise OperatorError(
            f"{path}: not valid TOML: {exc}", "fix the syntax at that line"
        ) from None


def read_deploy_file(path: Path) -> DeployFile:
    return parse_deploy_file(read_text(path), path)


def parse_deploy_file(text: str, path: str | Path) -> DeployFile:
    return validate_model(DeployFile, parse_toml(text, path), path)


def load_settings(
    env: str | None,
    *,
    config_path: str | Path = DEFAULT_CONFIG,
    overrides: Mapping[str, Any] | None = None,
    cli: Mapping[str, Any] | None = None,
) -> EnvironmentSettings:
    """Load one environment (None: the file's ``default_environment``); ``overrides`` come
    from invoke config, ``cli`` from flags."""
    if env is not None:
        check_env_name(env)
    path = find_config(config_path)
    root = path.parent.parent
    layers = Layers(path.relative_to(root).as_posix(), dict(overrides or {}), dict(cli or {}))
    deploy_file = read_deploy_file(path)
    env = env if env is not None else default_environment(deploy_file, path)
    settings = environment(deploy_file, env, path, root, layers)
    check_compose_project(settings, _others(deploy_file, env, path, root), path)
    return settings


def default_environment(deploy_file: DeployFile, path: Path) -> str:
    """The environment a task runs on when none is given: only one the file names."""
    known = ", ".join(sorted(deploy_file.environments))
    name = deploy_file.project.default_environment
    if name is None:
        raise OperatorError(
            f"no environment given, and {path} names no default (environments: {known})",
            f"pass --env NAME, or set default_environment = NAME under [project] in {path.name}",
        )
    if name not in deploy_file.environments:
        raise OperatorError(
            f"{path}: project.default_environment {name!r} is not an environment of the file",
            f"set it to one of: {known}",
        )
    return name


def environment(
    deploy_file: DeployFile, env: str, path: str | Path, root: Path, layers: Layers | None = None
) -> EnvironmentSettings:
    """One environment of a parsed deploy file, ``layers`` merged over it; ``path`` names the
    file in messages."""
    if env not in deploy_file.environments:
        known = ", ".join(sorted(deploy_file.environments))
        raise OperatorError(f"unknown environment {env!r} in {path}", f"use one of: {known}")
    layers = layers or Layers()
    merged: dict[str, Any] = {}
    file_layers = (deploy_file.defaults, deploy_file.environments[env])
    for where, table in zip(("defaults", f"environments.{env}"), file_layers, strict=True):
        if RUN_ONLY in table:
            raise OperatorError(
                f"{path}: {where}.{RUN_ONLY}: not a config key: trusting the key of a host seen"
                " for the first time is a choice made for one run",
                "remove it; pass --trust-new-hosts to the task (or set"
                " INVOKE_DEPLOYTOOLS_TRUST_NEW_HOSTS=1) when a new host joins",
            )
    for layer in (*file_layers, layers.overrides, layers.cli):
        merged = deep_merge(merged, layer)
    merged["name"] = env
    merged["root"] = root
    settings = validate_model(EnvironmentSettings, merged, path, prefix=f"environments.{env}")
    settings._layers = layers
    return settings


def _others(deploy_file: DeployFile, env: str, path: Path, root: Path) -> list[EnvironmentSettings]:
    """The file's other environments that load; one that does not says so in its own tasks."""
    found = []
    for name in sorted(deploy_file.environments):
        if name != env and ENV_NAME.match(name):
            try:
                found.append(environment(deploy_file, name, path, root))
            except OperatorError:
                continue
    return found


def engines(settings: EnvironmentSettings) -> set[str]:
    """Where the environment's compose projects live: this machine's Docker engine, or each
    host's (named by address and SSH port, as the config knows them)."""
    if not settings.hosts:
        return {"this machine"}
    return {f"{h.address.lower()}:{h.port}" for h in settings.hosts}


def check_compose_project(
    settings: EnvironmentSettings, others: list[EnvironmentSettings], path: Path
) -> None:
    """Refuse a compose project name that another environment uses on the same engine.

    Compose knows a project by its name on an engine: two environments sharing one would each
    take over, replace and remove the other's containers, and each journal would name a
    release the other had replaced.
    """
    if settings.compose is None or settings.runtime != "compose":
        return
    name = settings.compose.project_name
    for other in others:
        if other.runtime != "compose" or other.compose is None:
            continue
        shared = engines(settings) & engines(other)
        if other.compose.project_name == name and shared:
            key = "compose.project_name"
            raise OperatorError(
                f"{path}: environments.{settings.name}.{key} and environments.{other.name}.{key}"
                f" are both {name!r} on the same Docker engine ({', '.join(sorted(shared))}):"
                " each environment would take over and remove the other's containers",
                f"give environments.{settings.name}.{key} (or environments.{other.name}.{key})"
                " a name no other environment uses on that engine",
            )


def check_key_files(settings: EnvironmentSettings) -> None:
    """Refuse a host whose ``key_file`` does not exist, before any host is connected to.

    Checked when a task is about to reach the hosts, not when the file is loaded: listing the
    tasks, or a task on another environment, needs no key of this one.
    """
    envs = f"environments.{settings.name}.hosts"
    missing = [
        f"host {h.name} ({envs}[{i}].key_file): {settings.path(h.key_file)} does not exist"
        for i, h in enumerate(settings.hosts)
        if h.key_file and not settings.path(h.key_file).is_file()
    ]
    if missing:
        raise OperatorError(
            f"{settings.layers.config_file}: SSH key file missing for " + "; ".join(missing),
            "correct key_file (absolute, ~/..., or relative to the project root), or create"
            " the key (ssh-keygen -t ed25519 -f PATH) and add its .pub to the host's"
            " authorized_keys",
        )


def environment_names(config_path: str | Path = DEFAULT_CONFIG) -> list[str]:
    return sorted(read_deploy_file(find_config(config_path)).environments)


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Merge mappings recursively; ``None`` in ``top`` means "not set" and keeps ``base``."""
    out = dict(base)
    for key, value in top.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            # Also when ``base`` lacks the key: a nested "not set" must vanish, not become null.
            below = out.get(key)
            out[key] = deep_merge(below if isinstance(below, Mapping) else {}, value)
        else:
            out[key] = value
    return out


def validate_model(
    model: type[M],
    raw: Any,
    path: str | Path,
    prefix: str = "",
    fix: str = "correct these keys (see config/deploy.toml in the example for every key)",
) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
            lines.append(f"{where}: {_expected(err)}")
        raise config_problems(path, lines, fix) from None


def config_problems(path: str | Path, lines: list[str], fix: str) -> OperatorError:
    """One error for every ``key: problem`` line of a configuration file, naming the file."""
    return OperatorError(
        f"{path}: {len(lines)} problem(s) in the configuration:\n  " + "\n  ".join(lines), fix
    )


def _expected(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        if err["loc"] and err["loc"][-1] in RETIRED:
            return f"no longer a key: {RETIRED[err['loc'][-1]]} replaces it"
        return "unknown key (a typo? it is not part of the schema)"
    if kind == "missing":
        return "required key is missing"
    return f"{err['msg']} (got {err.get('input')!r})" if kind != "model_type" else err["msg"]
