"""Env values with ``$``, quotes and backslashes under docker compose, on a real engine.

The reported faults: compose interpolated ``$`` in the env file (``abc$def`` reached the
containers as ``abc``, ``a$$b`` as ``a$b``, ``x${HOME}y`` as the operator's home), so a
database password with a ``$`` worked for the backup and the migration on the host and failed
in the containers; and compose's warning about it (``The "kW2m..." variable is not set``)
printed most of the password into the terminal, the journal and ``stack.logs``.

The env files here are written as an operator writes them by hand: ``env.init``, then lines
typed in unquoted. Environment ``ctest`` is deployed as deploytools runs compose; ``craw`` has
a compose file of the operator's that feeds the file itself to a service (as a hand-made compose
call or an older deploytools did), whose image is missing: compose warns about the password's
``$`` on ``up`` (the commands that only look do not), and the failing ``up`` shows it.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import parts
from tests.support.deployproject import (
    COMPOSE_FILES,
    EXAMPLE,
    DeployProject,
    compose_env,
    health,
    remove_images,
    unique,
)
from tests.support.procs import free_port
from tests.support.require import require
from tests.support.secretforms import leaked

pytestmark = pytest.mark.integration

ENV, RAW = "ctest", "craw"
RAW_FILE = "example/docker-compose.rawenv.yml"
ODD_LINES = (
    "ODD_DOLLAR=abc$def\n"
    "ODD_DOUBLE=a$$b\n"
    "ODD_BRACE=x${HOME}y\n"
    'ODD_QUOTES="it\'s \\"quoted\\" \\\\ here"\n'
    "ODD_BACKSLASH='c:\\\\dir\\'s'\n"
    "ODD_HASH='has # hash'\n"
    "ODD_SPACES='  two  spaces  '\n"
)
ODD = {
    "ODD_DOLLAR": "abc$def",
    "ODD_DOUBLE": "a$$b",
    "ODD_BRACE": "x${HOME}y",
    "ODD_QUOTES": 'it\'s "quoted" \\ here',
    "ODD_BACKSLASH": "c:\\dir's",
    "ODD_HASH": "has # hash",
    "ODD_SPACES": "  two  spaces  ",
}
# What compose, fed the file as it is, changes: env.validate must name exactly these.
COMPOSE_CHANGES = {"ODD_DOLLAR", "ODD_DOUBLE", "ODD_BRACE", "ODD_BACKSLASH", "DATABASE_URL"}


@dataclass
class Site:
    project: DeployProject
    password: str
    ports: dict[str, str]
    projects: dict[str, str]  # env -> compose project
    images: dict[str, str]  # env -> image name
    tags: dict[str, str]

    def deployed(self) -> str:
        """A good release of ``ctest``, deployed now if there is none."""
        if ENV not in self.tags:
            run = self.project.deploy(ENV)
            assert run.returncode == 0, run.output
            self.tags[ENV] = self.project.releases(ENV)[-1]["tag"]
        return self.tags[ENV]

    def in_backend(self, *argv: str) -> str:
        labels = [f"label=com.docker.compose.project={self.projects[ENV]}"]
        labels.append("label=com.docker.compose.service=backend")
        filters = [arg for label in labels for arg in ("--filter", label)]
        name = docker("ps", "-q", *filters).split()[0]
        return docker("exec", name, *argv)

    def fragments(self) -> list[str]:
        """The pieces compose cuts the password into at its ``$``."""
        return self.password.split("$")


def docker(*args: str) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


def database_with_password(server: Any, name: str, role: str, password: str) -> str:
    """A fresh database owned by ``role`` (its password set to ``password``); its URL, the
    password as typed: a ``$`` is allowed in a URL's user information as it is."""
    import psycopg
    from psycopg import sql

    server.create_database(name)
    with psycopg.connect(server.url("postgres"), autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(name), sql.Identifier(role)
            )
        )
    return f"postgresql://{role}:{password}@127.0.0.1:{server.port}/{name}"


def write_env_by_hand(project: DeployProject, env: str, values: dict[str, str], url: str) -> None:
    """``env.init`` and the values, then DATABASE_URL and the odd lines typed in unquoted."""
    project.init_env(env, values)
    path = project.file(f"config/{env}.env")
    lines = [ln for ln in path.read_text().splitlines(True) if not ln.startswith("DATABASE_URL=")]
    path.write_text("".join(lines) + f"DATABASE_URL={url}\n" + ODD_LINES)


@pytest.fixture(scope="module")
def site(
    docker_engine: Any,
    postgres_server: Any,
    redis_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    require((EXAMPLE / "wheelhouse").is_dir(), "the example's wheelhouse", parts.PROVISION)
    project = DeployProject(tmp_path_factory.mktemp("deploy-envvalues") / "app", wheelhouse=True)
    password = f"kW2m$Tq9{secrets.token_hex(10)}"  # a letter after $: a variable to compose
    built = Site(
        project,
        password,
        ports={ENV: str(free_port()), RAW: str(free_port())},
        projects={ENV: unique("dtenvval"), RAW: unique("dtenvraw")},
        images={ENV: unique("deploytools-envval"), RAW: unique("deploytools-envraw")},
        tags={},
    )
    ok = compose_env(built.projects[ENV], built.images[ENV])
    raw = compose_env(built.projects[RAW], built.images[RAW])
    raw["env_file"] = f"config/{RAW}.env"
    raw["compose"]["files"] = [*COMPOSE_FILES, RAW_FILE.removeprefix("example/")]
    project.file(RAW_FILE).write_text(
        "# The operator's env file itself: compose reads it as it is (as a hand-made compose\n"
        "# call or an older deploytools would). The image is not there: `up` fails, before\n"
        "# it creates the services that wait for this one.\n"
        "services:\n"
        "  sidecar:\n    image: deploytools-test-absent:never\n"
        "    env_file: [../config/craw.env]\n    network_mode: host\n"
        "  backend:\n    depends_on: [sidecar]\n"
        "  celery-worker:\n    depends_on: [sidecar]\n"
    )
    project.configure({ENV: ok, RAW: raw})
    role = f"app_{secrets.token_hex(3)}"
    for env, db in ((ENV, "envvalues_ok"), (RAW, "envvalues_raw")):
        url = database_with_password(postgres_server, db, role, password)
        values = {
            "HOST": "127.0.0.1",
            "PORT": built.ports[env],
            "DATABASE_URL": url,
            "REDIS_URL": redis_server.url(11),
            "CELERY_BROKER_URL": redis_server.url(12 if env == ENV else 13),
            "CELERY_RESULT_BACKEND": redis_server.url(14),
            "OPENAI_API_KEY": "sk-test-" + secrets.token_urlsafe(24),
            "WEB_CONCURRENCY": "1",
            "CELERY_CONCURRENCY": "1",
        }
        write_env_by_hand(project, env, values, url)
    try:
        yield built
    finally:
        for env in (ENV, RAW):
            project.invoke("stack.down", "--env", env, timeout=600)
            remove_images(built.images[env])


def test_containers_and_host_tools_read_the_same_values(site: Site) -> None:
    project = site.project
    values = project.env_values(ENV)
    assert {k: values[k] for k in ODD} == ODD  # what python-dotenv reads, hence the host tools
    assert f":{site.password}@" in values["DATABASE_URL"]

    tag = site.deployed()

    record = [r for r in project.releases(ENV) if r["tag"] == tag][-1]
    assert (record["result"], record["revision"]) == ("ok", "0003")  # migrated on the host
    assert list(project.file(f"backups/{ENV}").glob(f"{record['backup']}*"))  # dumped too
    status, body = health(site.ports[ENV])  # the backend reached the database with it
    assert (status, body.get("release"), body.get("database")) == (200, tag, "ok")
    keys = [*ODD, "DATABASE_URL"]
    script = f"import json, os; print(json.dumps({{k: os.environ.get(k) for k in {keys!r}}}))"
    seen = json.loads(site.in_backend("python", "-c", script))
    assert seen == {k: values[k] for k in keys}


def test_env_validate_names_the_values_compose_would_change_and_shows_none(
    site: Site,
) -> None:
    run = site.project.invoke("env.validate", "--env", ENV, "--json")

    assert run.returncode == 0, run.output
    findings = json.loads(run.stdout)["findings"]
    warned = {f["key"] for f in findings if f["rule"] == "compose-value"}
    assert warned == COMPOSE_CHANGES
    assert {f["severity"] for f in findings if f["rule"] == "compose-value"} == {"warning"}
    for fragment in site.fragments():
        assert fragment not in run.output
    assert "abc$def" not in run.output and "c:\\dir" not in run.output


def test_compose_fed_the_raw_file_leaks_no_piece_of_the_password(site: Site) -> None:
    project = site.project

    run = project.deploy(RAW)

    assert run.returncode == 1, run.output
    assert "deploy failed at step 'start'" in run.stderr
    words = " ".join(run.output.split())
    assert "No such image: deploytools-test-absent:never" in words
    assert 'msg="The \\"***\\" variable is not set' in words  # compose's warning, masked
    readers = {
        "stack.logs": ["stack.logs", "--env", RAW, "--service", "sidecar"],
        "stack.status": ["stack.status", "--env", RAW],
        "history --json": ["history", "--env", RAW, "--json", "--limit", "1000"],
    }
    texts = {name: project.invoke(*argv).output for name, argv in readers.items()}
    journal = (project.state_dir(RAW) / "journal.jsonl").read_text()
    texts.update(deploy=run.output, journal=journal)
    assert "variable is not set" in journal
    for name, text in texts.items():
        assert leaked(site.password, text) == [], name
        for fragment in site.fragments():
            assert fragment not in text, (name, fragment[:4])
