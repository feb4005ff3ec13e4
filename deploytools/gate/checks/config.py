"""config: every environment of deploy.toml loads (no unknown key, no wrong type, nothing
missing, no two environments sharing a compose project on one engine)."""

from __future__ import annotations

from deploytools.errors import OperatorError
from deploytools.gate.project import Project
from deploytools.gate.registry import Item, register


@register("config")
def check_config(project: Project, env: str | None) -> list[Item]:
    """Every environment of config/deploy.toml loads and agrees with the others."""
    assert env is not None
    where = project.shown(project.config)
    try:
        project.settings(env)
    except OperatorError as exc:
        return [Item(env, "fail", exc.problem, where)]
    return [Item(env, "pass", "valid", where)]
