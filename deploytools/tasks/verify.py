"""verify: the CI gate (``python -m deploytools.verify``) from any project's ``tasks.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.exceptions import Exit

from deploytools.tasks._support import task

if TYPE_CHECKING:
    from deploytools.ui import Ui


@task(
    help={
        "env": "check only this environment (default: every environment of config/deploy.toml)",
        "only": "run only this check (config, env examples, migrations)",
    }
)
def verify(c: Context, ui: Ui, env: str | None = None, only: str | None = None) -> None:
    """The CI gate: every environment's config, env examples and migration safety."""
    from deploytools import verify as gate

    argv = ["--config", c.config.get("deploytools", {}).get("config") or "config/deploy.toml"]
    argv += ["--env", env] if env is not None else []
    argv += ["--only", only] if only is not None else []
    code = gate.main(argv, ui)
    if code:
        raise Exit(code=code)
