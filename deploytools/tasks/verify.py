"""verify: the CI gate (``python -m deploytools.gate``) from any project's ``tasks.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.exceptions import Exit

from deploytools.tasks._support import JSON_HELP, task

if TYPE_CHECKING:
    from deploytools.ui import Ui


@task(
    help={
        "env": "check only this environment (repeat for several; default: every environment)",
        "only": "run only this check (repeat): config, env-files, compose, flags, migrations, "
        "migration-roundtrip, docs-drift",
        "json": JSON_HELP,
        "junit": "also write the results to this JUnit XML file (xunit2), for the CI's report",
        "strict": "warnings and checks that could not run fail the gate too",
    },
    iterable=["env", "only"],
)
def verify(
    c: Context,
    ui: Ui,
    env: list[str] | None = None,
    only: list[str] | None = None,
    json: bool = False,
    junit: str | None = None,
    strict: bool = False,
) -> None:
    """The CI gate: config, env files, compose, flags, migrations, docs, per environment."""
    from deploytools.gate.cli import main

    argv = ["--config", c.config.get("deploytools", {}).get("config") or "config/deploy.toml"]
    argv += [arg for name in env or [] for arg in ("--env", name)]
    argv += [arg for name in only or [] for arg in ("--only", name)]
    argv += ["--json"] * json + ["--strict"] * strict
    argv += ["--junit", junit] if junit is not None else []
    code = main(argv, ui)
    if code:
        raise Exit(code=code)
