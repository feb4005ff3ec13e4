"""hosts.*: ask an environment's hosts whether a run can work on them."""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING

from invoke.context import Context

from deploytools.errors import DeployFailure, OperatorError
from deploytools.tasks._support import (
    ENV_HELP,
    HOSTS_HELP,
    JSON_HELP,
    TRUST_NEW_HOSTS_HELP,
    open_site,
    task,
    trusting,
)

if TYPE_CHECKING:
    from deploytools.hostcheck import HostChecks
    from deploytools.ui import Ui

MARKS = {True: "✓", False: "✗", None: "–"}


@task(
    help={
        "env": ENV_HELP,
        "json": JSON_HELP,
        "trust_new_hosts": TRUST_NEW_HOSTS_HELP,
        "max_clock_skew": "seconds a host's clock may be off this machine's (default 5)",
        "hosts": HOSTS_HELP,
    }
)
def check(
    c: Context,
    ui: Ui,
    env: str | None = None,
    json: bool = False,
    trust_new_hosts: bool = False,
    max_clock_skew: float = 5.0,
    hosts: str | None = None,
) -> None:
    """Check every host: SSH and its key, Docker/compose or Python, disk, clock, write access."""
    from deploytools.config import check_key_files
    from deploytools.hostcheck import check_hosts, check_names

    with open_site(c, env, ui, trusting(trust_new_hosts), hosts) as site:
        conf = site.settings
        if not conf.hosts:
            raise OperatorError(
                f"environment {conf.name} has no hosts: it runs on this machine",
                f"add [[environments.{conf.name}.hosts]] to the config, or check another --env",
            )
        check_key_files(conf)
        chosen = [next(h for h in conf.hosts if h.name == name) for name in site.targets]
        reports = check_hosts(
            conf,
            chosen,
            max_skew=max_clock_skew,
            connect=lambda host: nullcontext(site.host(host.name)),  # the site closes them
        )
    if json:
        ok = all(r.ok for r in reports)
        ui.emit_json({"env": conf.name, "ok": ok, "hosts": [r.as_dict() for r in reports]})
    else:
        names = check_names(conf)
        rows = [[r.host, ",".join(r.roles), *(_cell(r, n) for n in names)] for r in reports]
        ui.table(f"hosts of {conf.name}", ["host", "roles", *names], rows, ids=["host"])
    bad = [r for r in reports if not r.ok]
    if bad:
        raise DeployFailure(
            f"{len(bad)} of {len(reports)} host(s) failed a check: "
            + ", ".join(f"{r.host} ({', '.join(c.name for c in r.failed())})" for r in bad),
            "put right what the ✗ cells say (--json gives every detail), then run"
            " `invoke hosts.check` again",
        )
    ui.success(f"all {len(reports)} host(s) of {conf.name} passed every check")


def _cell(report: HostChecks, name: str) -> str:
    found = next((c for c in report.checks if c.name == name), None)
    if found is None:
        return ""
    return f"{MARKS[found.ok]} {found.detail}".strip()
