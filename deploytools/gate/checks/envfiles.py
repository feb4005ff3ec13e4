"""env files: the environment's example always, and its real env file when this machine has
one (a CI checkout has only the examples), against the env rules and each other. The real
file's secrets were taught to the redactor before the checks started (``gate.project``)."""

from __future__ import annotations

from deploytools.env import file as envfile
from deploytools.env.check import check_example
from deploytools.env.rules import rules_for
from deploytools.findings import Finding
from deploytools.gate.project import Project
from deploytools.gate.registry import Item, register
from deploytools.hosts.local import LocalHost


@register("env-files")
def check_env_files(project: Project, env: str | None) -> list[Item]:
    """The env example (and the real env file when present): well-formed, every required key,
    valid values, no key without a rule, the two files agreeing."""
    assert env is not None
    settings = project.settings(env)
    rules = rules_for(settings)
    path = settings.path(settings.env_example)
    example = envfile.parse(path.read_bytes()) if path.is_file() else None
    shown = project.shown(path)
    items: list[Item] = []
    if example is not None:
        items += _items(env, shown, check_example(example, rules), "well-formed, every key")
    real = project.env_files.get(env)
    if real is not None:
        from deploytools.env.validate import validate

        real_path = settings.path(settings.env_file)
        report = validate(real, real_path, settings, rules, LocalHost(), example)
        items += _items(env, project.shown(real_path), report.findings, "valid")
    elif example is None:
        items.append(Item(env, "fail", f"neither {settings.env_file} nor {shown} exists", shown))
    return items


def _items(env: str, shown: str, findings: list[Finding], fine: str) -> list[Item]:
    items = [
        Item(
            env,
            "fail" if f.severity == "error" else "warn",
            f.problem,
            f"{shown}:{f.line}" if f.line else shown,
        )
        for f in findings
    ]
    if not any(f.severity == "error" for f in findings):
        items.append(Item(env, "pass", f"{fine} ({len(findings)} warning(s))", shown))
    return items
