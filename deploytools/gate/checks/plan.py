"""plan: what a deploy of the environment would do where, worked out from the config alone
(CI reaches no host): the primary (lock, backup, migrations), the rollout's batches, and the
services each host would run.

The deploy's own ``--dry-run`` asks the world for its plan (the database's revision, git, the
journal on the primary): not run here.
"""

from __future__ import annotations

from deploytools.config import EnvironmentSettings
from deploytools.gate.project import Project
from deploytools.gate.registry import Item, register


@register("plan")
def check_plan(project: Project, env: str | None) -> list[Item]:
    """The hosts, batches and services a deploy would use, from the config alone."""
    from deploytools.pipeline.rollout import describe, plan_batches

    assert env is not None
    settings = project.settings(env)
    where = project.shown(project.config)
    services = _started(project, settings)
    if not services:
        none = "a deploy would start no service (migrations only?): name them in the compose"
        return [Item(env, "warn", f"{none} files, or give them a command (process)", where)]
    steps = Item(env, "pass", f"steps: {_steps(settings)}", where)
    if not settings.hosts:
        return [steps, Item(env, "pass", f"on this machine: {', '.join(services)}", where)]
    primary = settings.primary_host.name
    hosts = [primary, *(h.name for h in settings.hosts if h.name != primary)]
    policy = settings.rollout.policy(len(hosts))
    items = [
        steps,
        Item(env, "pass", f"primary {primary} (lock, backup, migrations); "
             f"{describe(policy, plan_batches(hosts, policy))}", where),
    ]  # fmt: skip
    if len(hosts) > 1 and policy.max_fail >= len(hosts):
        items.append(Item(env, "warn", f"rollout.max_fail {policy.max_fail} tolerates every one "
                          f"of the {len(hosts)} hosts failing: a deploy that reached none would "
                          "pass", f"{where} (environments.{env}.rollout)"))  # fmt: skip
    for host in hosts:
        mine = settings.services_on(host, services)
        mine = services if mine is None else mine
        if mine:
            items.append(Item(env, "pass", f"{host}: {', '.join(mine)}", where))
        else:
            roles = next(h.roles for h in settings.hosts if h.name == host)
            items.append(Item(env, "warn", f"host {host} would run no service: its roles "
                              f"({', '.join(roles)}) are none of the services'",
                              f"{where} (environments.{env}.hosts)"))  # fmt: skip
    return items


def _started(project: Project, settings: EnvironmentSettings) -> list[str]:
    """The services a deploy starts: compose's outside a profile, or those with a command."""
    if settings.runtime != "compose":
        return [name for name, conf in settings.services.items() if conf.command]
    from deploytools.gate import composefile
    from deploytools.gate.checks.compose import production

    data, _ = production(project, settings)
    return [n for n, spec in composefile.services(data).items() if not spec.get("profiles")]


def _steps(settings: EnvironmentSettings) -> str:
    """The deploy's own stages in order, as the pipeline builds them for this environment
    (per-host stages say on which hosts), without asking any of them for its plan: a step's
    plan asks the world (the database's revision, the journal on the primary)."""
    from deploytools.hosts.local import LocalHost
    from deploytools.pipeline.engine import Together
    from deploytools.pipelines.deploy import deploy_steps
    from deploytools.site.lock import DeployLock
    from deploytools.steps.hosts import OnHosts

    remote = bool(settings.hosts)
    images = remote and settings.runtime == "compose"
    registry = images and settings.compose is not None and settings.compose.registry is not None
    wheels = remote and settings.runtime == "process" and settings.releases.wheels
    lock = DeployLock(LocalHost(), settings.state_dir, settings.timeouts.lock_ttl, env="-")
    stages = deploy_steps(
        lock, "deploy", 0.0, False,
        remote=remote, ship_images=images, registry=registry, wheels=wheels,
    )  # fmt: skip
    said = []
    for stage in stages:
        if isinstance(stage, OnHosts):
            where = (
                "host by host as the rollout goes"
                if stage.rolling
                else "every host but the primary"
                if stage.others
                else "every host at once"
            )
            said.append(f"{stage.name} ({', '.join(s.name for s in stage.steps)}: {where})")
        elif isinstance(stage, Together):
            said.append(" + ".join(s.name for s in stage.steps))
        else:
            said.append(stage.name)
    return " -> ".join(said)
