"""stack.*: build, start, stop, look at and wait for the services of an environment.

Thin: each task loads the settings and the env file, then calls the runtime of every host of
the environment (or those ``--hosts`` names; ``deploytools.runtime``) and
``deploytools.probes.health``. A host acts on, and shows, the services of its roles only
(``EnvironmentSettings.services_on``, as the deploy starts them); each line names its host.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from invoke.context import Context

from deploytools.tasks._support import ENV_HELP, HOSTS_HELP, JSON_HELP, open_site, task

if TYPE_CHECKING:  # heavy: imported when a task runs, not for `invoke --list`
    from deploytools.config import EnvironmentSettings
    from deploytools.hosts.base import Host
    from deploytools.runtime import Runtime
    from deploytools.site import Site
    from deploytools.site.journal import Journal
    from deploytools.ui import Ui

RELEASE_HELP = (
    "release id (image tag); default: the release running now, else 'dev'. A recorded release "
    "runs with its own compose files and config, and is built from its own commit"
)
SERVICE_HELP = "only this service (repeat for several); default: all"
TIMEOUT_HELP = (
    "seconds to wait for each service; default: its probe.timeout, capped by timeouts.health"
)


@dataclass
class Target:
    site: Site
    settings: EnvironmentSettings
    host: Host
    runtime: Runtime
    commit: str | None = None  # the recorded release's, whose config the target has (``own``)

    @property
    def values(self) -> dict[str, str]:
        return self.site.env_values

    @property
    def journal(self) -> Journal:
        return self.site.journal

    @property
    def control(self) -> Host:
        return self.site.control

    def services(self, asked: list[str] | None = None) -> list[str] | None:
        """Of ``asked`` (every service when none), those this host runs by its roles: the
        runtime's argument ([] when that is every service), or None when it runs none."""
        names = self.runtime.require_services(asked or [])  # an unknown name: refused
        mine = self.settings.services_on(self.host.name, names)
        if mine is None:
            return list(asked or [])
        return mine or None


def stacks(c: Context, ui: Ui, env: str | None, hosts: str | None = None) -> Iterator[Target]:
    """The environment's runtime on each of its hosts (those ``hosts`` names), with the env
    file's secrets learnt."""
    with open_site(c, env, ui, hosts=hosts) as site:
        site.env_values  # noqa: B018  # learnt before any host is asked anything
        for name in site.targets:
            host = site.host(name)
            yield Target(site, site.settings, host, site.runtime(host))


def _release(runtime: Runtime, release: str | None) -> str:
    return release or runtime.current_release() or "dev"


def own(t: Target, release: str) -> Target:
    """``t`` as ``release`` was made when the journal records it: its compose files and config
    (``deploytools.releaseconfig``); else ``t`` itself."""
    from deploytools.releaseconfig import placed_settings
    from deploytools.runtime import runtime_for

    config, conf = placed_settings(t.control, t.settings, release, t.journal.releases(), t.host)
    if config.sha is None:
        return t
    runtime = runtime_for(conf, t.host, t.values, control=t.control)
    return replace(t, settings=conf, runtime=runtime, commit=config.sha)


@task(help={"env": ENV_HELP, "release": RELEASE_HELP, "hosts": HOSTS_HELP})
def build(
    c: Context, ui: Ui, env: str | None = None, release: str | None = None, hosts: str | None = None
) -> None:
    """Build the images of a release, tagged with its id: a recorded release from its commit."""
    from deploytools.artifacts import build_release

    for t in stacks(c, ui, env, hosts):
        rel = _release(t.runtime, release)
        t = own(t, rel)
        ids, commit = build_release(t.settings, t.runtime, t.journal, rel)  # checks the runtime
        for image, image_id in ids.items():
            ui.info(f"{t.host.name}: {image} {image_id}")
        source = f"its commit {commit[:12]}" if commit else "the working tree"
        ui.success(f"{t.host.name}: release {rel} built from {source} ({t.runtime.kind})")


@task(
    help={
        "env": ENV_HELP,
        "release": RELEASE_HELP,
        "service": SERVICE_HELP,
        "build": "build the release's images first when they are missing",
        "wait": "then wait until every service is healthy (as stack.wait)",
        "hosts": HOSTS_HELP,
    },
    iterable=["service"],
)
def up(
    c: Context,
    ui: Ui,
    env: str | None = None,
    release: str | None = None,
    service: list[str] | None = None,
    build: bool = False,
    wait: bool = False,
    hosts: str | None = None,
) -> None:
    """Start (or replace) the services on a release; `--wait` then waits until healthy."""
    from deploytools.artifacts import build_release, restore_images
    from deploytools.probes.health import targets_for, wait_healthy

    for t in stacks(c, ui, env, hosts):
        rel = _release(t.runtime, release)
        t = own(t, rel)
        t.runtime.check()
        mine = t.services(service)
        if mine is None:
            ui.info(f"{t.host.name}: runs none of {', '.join(service or ['the services'])}")
            continue
        targets_for(t.settings, t.runtime, t.values, mine)  # bad probe: nothing started
        if t.commit:  # recorded: its images by id, never a tag that names other code
            restore_images(t.settings, t.runtime, t.journal, rel, why="stack.up", build=build)
        elif build and not t.runtime.has_release(rel):
            build_release(t.settings, t.runtime, t.journal, rel)
        t.runtime.up(rel, mine)
        ui.success(f"{t.host.name}: started {', '.join(mine or t.runtime.services())} on {rel}")
        if wait:
            wait_healthy(
                t.settings, t.runtime, ui, host=t.host, env_values=t.values, services=mine
            )


@task(help={"env": ENV_HELP, "hosts": HOSTS_HELP})
def down(c: Context, ui: Ui, env: str | None = None, hosts: str | None = None) -> None:
    """Stop and remove the services (compose keeps named volumes; process logs stay)."""
    for t in stacks(c, ui, env, hosts):
        t.runtime.down()
        ui.success(f"{t.host.name}: stack stopped")


@task(help={"env": ENV_HELP, "json": JSON_HELP, "hosts": HOSTS_HELP})
def status(
    c: Context, ui: Ui, env: str | None = None, json: bool = False, hosts: str | None = None
) -> None:
    """Show the state, health and release of every service on every host that runs it."""
    from deploytools.runtime.base import MISSING

    rows: list[dict[str, object]] = []
    for t in stacks(c, ui, env, hosts):
        mine = t.services()
        for name, state in t.runtime.status().items():
            row = {"host": t.host.name, **state.as_dict()}
            if mine is not None and (not mine or name in mine):
                rows.append(row)
            elif state.state != MISSING:  # left from before the host's roles changed: say so
                rows.append({**row, "detail": f"{row['detail']} (not of its roles)".strip()})
    if json:
        ui.emit_json(rows)
        return
    columns = ["host", "service", "state", "health", "release", "detail"]
    ui.table("stack status", columns, [[r[k] for k in columns] for r in rows], ids={"release"})


@task(
    help={
        "env": ENV_HELP,
        "service": "the service whose log to show",
        "lines": "how many of the last lines",
        "hosts": HOSTS_HELP,
    },
    positive=["lines"],
)
def logs(
    c: Context,
    ui: Ui,
    env: str | None = None,
    service: str = "",
    lines: int = 50,
    hosts: str | None = None,
) -> None:
    """Print the last lines of a service's log on every host that runs it (secrets masked)."""
    for t in stacks(c, ui, env, hosts):
        mine = t.services([service] if service else [])
        for name in mine or ([] if mine is None else t.runtime.services()):
            ui.info(f"--- {t.host.name}: {name} (last {lines} lines)")
            for line in t.runtime.logs(name, lines).splitlines():
                ui.result(line)


@task(
    help={
        "env": ENV_HELP,
        "service": SERVICE_HELP,
        "timeout": TIMEOUT_HELP,
        "json": JSON_HELP,
        "hosts": HOSTS_HELP,
    },
    iterable=["service"],
    positive=["timeout"],
)
def wait(
    c: Context,
    ui: Ui,
    env: str | None = None,
    service: list[str] | None = None,
    timeout: float | None = None,
    json: bool = False,
    hosts: str | None = None,
) -> None:
    """Wait until every service is healthy; on timeout name it, its probe and its last log lines."""
    from deploytools.probes.health import wait_healthy

    results: list[dict[str, object]] = []
    for t in stacks(c, ui, env, hosts):
        mine = t.services(service)
        if mine is None:
            continue
        found = wait_healthy(
            t.settings,
            t.runtime,
            ui,
            host=t.host,
            env_values=t.values,
            services=mine,
            timeout=timeout,
        )
        results.extend({"host": t.host.name, **h.as_dict()} for h in found)
    if json:
        ui.emit_json(results)
