"""The migration round trip (``upgrade head`` -> ``downgrade base`` -> ``upgrade head``, then
``alembic check``) on the gate's throwaway database, run where deploys run alembic:

- a process environment: the app's interpreter (``ProcessRuntime``), as ``db.migrate`` runs it;
- compose environments: a one-off container of ``database.migrate_service``'s image, built from
  the checkout as a deploy builds it (``runtime.migrations.checkout``: the environment's
  compose files, a scratch tag no deploy gives, untagged afterwards while its layers stay in
  Docker's build cache), in a compose project of the gate's own, on the host's network (the
  throwaway listens on loopback; a SQLite one is mounted at the same path). Environments
  that build the same image share one round trip. With no engine to build it, the project's
  interpreter runs it instead, which the result says (never a pass).

The throwaway's URL takes the app's own scheme (``postgresql+asyncpg://``): an env.py that
reads an async URL gets one. It reaches alembic in its environment (``-e NAME`` for a
container), never on a command line, and overrides whatever env file the compose file names.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from deploytools.config import EnvironmentSettings
from deploytools.errors import DeployFailure, DeployToolsError, OperatorError
from deploytools.gate.registry import Item
from deploytools.hosts.base import Result

if TYPE_CHECKING:
    from deploytools.db.migrate import AppAlembic, Where
    from deploytools.gate.project import Project
    from deploytools.gate.throwaway import Database

TARGET = "revisions"
NO_METADATA = "does not provide a MetaData object"
DIFFERS = "New upgrade operations detected"
OVERRIDE_FILE = "verify.compose.yml"
ALEMBIC_PROBE_TIMEOUT = 60.0


@dataclass(frozen=True)
class WithUrl:
    """A runtime's alembic with the throwaway's URL always in its environment, over any the
    env file the compose file names would give: the round trip never reaches another
    database."""

    runtime: AppAlembic
    env: Mapping[str, str]

    def check_migrations(self) -> str:
        return self.runtime.check_migrations()

    def run_alembic(
        self, release: str | None, args: Sequence[str], env: Mapping[str, str]
    ) -> Result:
        return self.runtime.run_alembic(release, args, {**env, **self.env})


def app_shaped(url: str, app_url: str | None) -> str:
    """``url`` (the throwaway's) under the scheme of ``app_url`` (the app's, e.g.
    ``postgresql+asyncpg``) when both name the same kind of database; else as it is."""

    def backend(scheme: str) -> str:
        name = scheme.partition("+")[0].lower()
        return "postgresql" if name == "postgres" else name

    scheme, _, rest = url.partition("://")
    app_scheme = app_url.partition("://")[0] if app_url and "://" in app_url else ""
    if app_scheme and backend(app_scheme) == backend(scheme):
        return f"{app_scheme}://{rest}"
    return url


def compose_override(service: str, mount: str | None) -> str:
    """The gate's last compose file: ``service`` on the host's network (the throwaway listens
    on loopback; this engine may have no bridge) with ``mount`` (a SQLite throwaway's
    directory) at the same path, so that one URL names it inside and out."""
    lines = ["services:", f"  {service}:", "    network_mode: host"]
    if mount is not None:
        lines += ["    volumes:", f"      - {_yaml_string(f'{mount}:{mount}')}"]
    return "\n".join(lines) + "\n"


def _yaml_string(text: str) -> str:
    import json

    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def image_key(settings: EnvironmentSettings) -> Hashable:
    """What makes the image and how alembic runs in it: environments alike share a round trip."""
    conf = settings.compose
    assert conf is not None
    db = settings.database
    return (
        str(settings.path(conf.directory).resolve()), tuple(conf.files), conf.image_name,
        tuple(sorted(conf.build_args.items())), db.migrate_service, db.alembic_ini,
        db.alembic_dir, db.url_key, settings.app_dir, _scheme(app_url(settings)),
    )  # fmt: skip


def app_url(settings: EnvironmentSettings) -> str | None:
    """The app's database URL: the real env file's when there is one, else its example's."""
    from deploytools.env.file import load_values

    for name in (settings.env_file, settings.env_example):
        path = settings.path(name)
        if path.is_file():
            try:
                return load_values(path).get(settings.database.url_key)
            except OperatorError:
                return None
    return None


def _scheme(url: str | None) -> str:
    return url.partition("://")[0] if url and "://" in url else ""


def on_interpreter(project: Project, settings: EnvironmentSettings) -> Item:
    """The round trip on the app's interpreter, as a process deploy runs alembic."""
    with _throwaway(project, settings) as (_, database, url, local):
        at = _interpreter(local, url)
        return round_trip(local, at, database, f"{settings.name}'s interpreter")


def in_image(project: Project, group: Sequence[EnvironmentSettings]) -> Item:
    """The round trip in the image of the first of ``group`` (environments building the same
    one), or on the project's interpreter when no Docker engine builds it."""
    from deploytools.runtime.compose import ComposeRuntime
    from deploytools.runtime.migrations import checkout

    settings = group[0]
    names = ", ".join(s.name for s in group)
    with _throwaway(project, settings) as (scratch, database, url, local):
        gated = _gate_compose(local, scratch, database)
        with ExitStack() as stack:
            try:
                at = stack.enter_context(checkout(gated))
            except DeployFailure as exc:  # no client, no engine, no compose v2
                return _fallback(local, url, database, names, exc.problem)
            except OperatorError as exc:  # the build, the compose files, migrate_service
                said = project.redactor(_gist(exc.problem))
                return Item(TARGET, "fail", f"{names}: {said}", alembic_where(settings))
            assert isinstance(at.runtime, ComposeRuntime)
            image = ", ".join(at.runtime.images(at.release or "")) or at.release or "?"
            ran = f"in image {image}, built from the compose files of {names}"
            at = replace(at, runtime=WithUrl(at.runtime, {settings.database.url_key: url}))
            return round_trip(local, at, database, ran)


def _gist(problem: str, last: int = 3) -> str:
    """A long error (a build's output) as its first line and its ``last`` lines, where
    BuildKit and compose say what failed (their rules and warnings left out)."""
    lines = [line.strip() for line in problem.splitlines() if line.strip().strip("-")]
    lines = [line for line in lines if "level=warning" not in line]
    if len(lines) <= last + 1:
        return " ".join(lines)
    return f"{lines[0]} ... {' | '.join(lines[-last:])}"


def round_trip(settings: EnvironmentSettings, at: Where, database: Database, ran: str) -> Item:
    """The three moves through ``db.migrate`` (which checks where the database really is after
    each), then ``alembic check``; ``ran`` says where alembic ran."""
    from deploytools.db.migrate import downgrade, upgrade
    from deploytools.ui import Ui

    quiet = Ui(stdout=io.StringIO(), stderr=io.StringIO())
    where = alembic_where(settings)
    on = f"on a throwaway {database.kind} database"
    for move, target in ((upgrade, "head"), (downgrade, "base"), (upgrade, "head")):
        try:
            move(settings, quiet, target, at=at)
        except DeployToolsError as exc:
            said = exc.problem.splitlines()[0]
            return Item(TARGET, "fail", f"{move.__name__} {target} {on} ({ran}) failed: {said}",
                        where)  # fmt: skip
    matched, models = _models_match(settings, at)
    said = f"upgrade head, downgrade base, upgrade head {on} ({ran}); {models}"
    return Item(TARGET, "pass" if matched else "fail", said, where)


def _fallback(
    settings: EnvironmentSettings, url: str, database: Database, names: str, why: str
) -> Item:
    """No engine: the project's interpreter when it has alembic, which the result says; a
    round trip that holds there is a warning (the image was not tried), never a pass."""
    from deploytools.hosts.local import LocalHost

    instead = f"could not run in the image of {names}: {why.splitlines()[0]}"
    at = _interpreter(settings, url)
    try:
        python = at.runtime.check_migrations()
    except OperatorError as exc:
        return Item(TARGET, "could-not-run", f"{instead}; nor on an interpreter: {exc.problem}",
                    alembic_where(settings))  # fmt: skip
    probe = [python, "-c", "import alembic"]
    if not LocalHost().run(probe, check=False, timeout=ALEMBIC_PROBE_TIMEOUT).ok:
        lacks = f"nor on {python}: it has no alembic (install the app's requirements there)"
        return Item(TARGET, "could-not-run", f"{instead}; {lacks}", alembic_where(settings))
    found = round_trip(settings, at, database, python)
    status = "warn" if found.status == "pass" else found.status
    return Item(TARGET, status, f"{instead}; ran on {python} instead: {found.message}", found.where)


def _interpreter(settings: EnvironmentSettings, url: str) -> Where:
    from deploytools.db.migrate import Where
    from deploytools.hosts.local import LocalHost
    from deploytools.runtime.process import ProcessRuntime

    runtime = ProcessRuntime(settings, LocalHost(), {settings.database.url_key: url})
    return Where(LocalHost(), runtime)


def _gate_compose(
    settings: EnvironmentSettings, scratch: Path, database: Database
) -> EnvironmentSettings:
    """``settings`` as the gate builds and runs them: a compose project and state directory of
    its own in ``scratch`` (no deploy's containers, env file or labels touched), with the
    override file last."""
    import secrets

    conf = settings.compose
    assert conf is not None
    mount = None
    if database.path is not None:  # SQLite: the container's user writes it and its journal
        mount = str(database.path.parent)
        database.path.parent.chmod(0o777)  # not sticky: the gate removes what that user made
    override = scratch / OVERRIDE_FILE
    override.write_text(compose_override(settings.database.migrate_service, mount))
    compose = conf.model_copy(update={
        "project_name": f"deploytools-verify-{secrets.token_hex(4)}",
        "files": [*conf.files, str(override)],
    })  # fmt: skip
    state = scratch / "state"
    return settings.model_copy(update={"compose": compose, "state_dir": str(state)})


@contextmanager
def _throwaway(
    project: Project, settings: EnvironmentSettings
) -> Iterator[tuple[Path, Database, str, EnvironmentSettings]]:
    """A scratch directory, the throwaway database there, its URL in the app's shape (its
    password taught to the gate's redactor), and ``settings`` reading that URL from an env file
    of the scratch directory (0600): deploytools reads the database's revision from there."""
    from deploytools.gate.throwaway import throwaway
    from deploytools.redact import url_password

    with tempfile.TemporaryDirectory(prefix="deploytools-verify-") as name:
        scratch = Path(name)
        with throwaway(scratch) as database:
            key = settings.database.url_key
            url = app_shaped(database.url, app_url(settings))
            if (password := url_password(url)) is not None:
                project.redactor.add(password)
            env_file = scratch / "roundtrip.env"
            env_file.touch(mode=0o600)
            env_file.write_text(f"{key}={url}\n", encoding="utf-8")
            # on this machine, whatever hosts the environment deploys to
            here = {"env_file": str(env_file), "hosts": []}
            yield scratch, database, url, settings.model_copy(update=here)


def _models_match(settings: EnvironmentSettings, at: Where) -> tuple[bool, str]:
    """``alembic check`` on the database just upgraded: do the app's models (env.py's
    ``target_metadata``) match the schema its migrations make? (True, what it found) also
    when the project declares no metadata, which it says."""
    from deploytools.commands import alembic
    from deploytools.db.location import release_ini

    done = at.runtime.run_alembic(at.release, alembic.check(release_ini(settings)), {})
    output = done.stdout + done.stderr
    if done.returncode == 0:
        return True, "alembic check: the models match the schema"
    if NO_METADATA in output:
        return True, "alembic check not run: env.py gives no target_metadata (no models declared)"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    found = next((line for line in lines if DIFFERS in line), lines[-1] if lines else "")
    return False, f"alembic check: the models differ from the schema the migrations make: {found}"


def alembic_where(settings: EnvironmentSettings) -> str:
    """Where to look about a migration finding: the migrations' directory, else alembic.ini."""
    return settings.database.alembic_dir or settings.database.alembic_ini
