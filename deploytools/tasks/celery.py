"""celery.*: prove the workers answer, have the tasks and run the expected release."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke.context import Context

from deploytools.tasks._support import ENV_HELP, JSON_HELP, settings, task

if TYPE_CHECKING:
    from deploytools.ui import Ui

RELEASE_HELP = "release id every worker must run; default: the one the stack runs now"


@task(help={"env": ENV_HELP, "release": RELEASE_HELP, "json": JSON_HELP})
def verify(
    c: Context, ui: Ui, env: str | None = None, release: str | None = None, json: bool = False
) -> None:
    """Ping the workers, count them, check their tasks, ask each canary for its release."""
    from deploytools import targets
    from deploytools.celery_check import verify_celery
    from deploytools.envvalidate import learned_values
    from deploytools.runtime import runtime_for

    conf = settings(c, env)
    values = learned_values(conf, ui.redact)
    host = targets.primary(conf)
    expected = release or runtime_for(conf, host, values).current_release()
    report = verify_celery(conf, values, expected, ui, host=host)
    if json:
        ui.emit_json({"release": expected, **report.as_dict()})
