"""env.*: check an environment's env file against the rules, and create one from its example."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke.context import Context

from deploytools.tasks._support import ENV_HELP, JSON_HELP, open_site, task

if TYPE_CHECKING:
    from deploytools.ui import Ui

FILE_HELP = "check this env file instead of the environment's env_file (same rules and example)"
EXIST_OK_HELP = "if the env file already exists, leave it and succeed (for scripts run twice)"


@task(help={"env": ENV_HELP, "json": JSON_HELP, "file": FILE_HELP})
def validate(
    c: Context, ui: Ui, env: str | None = None, json: bool = False, file: str | None = None
) -> None:
    """Check an env file against the built-in and the project's env rules and its example."""
    from deploytools.env import validate as envvalidate
    from deploytools.inputs import check_path

    path = check_path(file, "--file") if file else None
    site = open_site(c, env, ui)
    report = envvalidate.validate_environment(site.settings, ui, site.control, path)
    envvalidate.show(ui, report)


@task(help={"env": ENV_HELP, "exist_ok": EXIST_OK_HELP})
def init(c: Context, ui: Ui, env: str | None = None, exist_ok: bool = False) -> None:
    """Create the env file from its example with fresh secrets (mode 0600); never overwrites."""
    from deploytools.env import init as envinit
    from deploytools.env.rules import rules_for

    site = open_site(c, env, ui)
    conf = site.settings
    if exist_ok and conf.path(conf.env_file).exists():
        ui.info(f"{conf.path(conf.env_file)} exists: left as it is")
        return
    result = envinit.init_env_file(
        site.control, conf.path(conf.env_file), conf.path(conf.env_example), rules_for(conf)
    )
    ui.success(f"created {result.path} (mode 0600)")
    if result.generated:
        ui.info(f"fresh random values for: {', '.join(result.generated)}")
    if result.to_fill:
        ui.warn(f"still to fill in: {', '.join(result.to_fill)}; then run invoke env.validate")
