"""celery.*: prove the workers answer, have the tasks and run the expected release."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke.context import Context

from deploytools.tasks._support import ENV_HELP, JSON_HELP, open_site, task

if TYPE_CHECKING:
    from deploytools.ui import Ui

RELEASE_HELP = "release id every worker must run; default: the one the stack runs now"


@task(help={"env": ENV_HELP, "release": RELEASE_HELP, "json": JSON_HELP})
def verify(
    c: Context, ui: Ui, env: str | None = None, release: str | None = None, json: bool = False
) -> None:
    """Ping the workers of every host, count them, check their tasks, ask each canary for its
    release (through the primary's broker connection: one broker for every host)."""
    from deploytools.probes.celery import verify_celery

    with open_site(c, env, ui) as site:
        host = site.primary
        expected = release or site.runtime(host).current_release()
        report = verify_celery(site.settings, site.env_values, expected, ui, host=host)
    if json:
        ui.emit_json({"release": expected, **report.as_dict()})
