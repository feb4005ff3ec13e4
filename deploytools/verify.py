"""``python -m deploytools.verify``: the CI gate, a list of named checks run over the project.

Each check takes the ``Project`` and returns ``Outcome``s (one row each in the table). A new
gate (e.g. the migration-safety lint) is one more ``Check`` appended to ``CHECKS``. Exit code 1
when any outcome failed, so ``invoke verify`` (or ``nox -s verify``) fails the build; 2 when the
command line names an environment the config file does not have.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deploytools.config import (
    DEFAULT_CONFIG,
    EnvironmentSettings,
    find_config,
    load_settings,
    read_deploy_file,
)
from deploytools.env import file as envfile
from deploytools.env.check import check_example
from deploytools.env.rules import rules_for
from deploytools.errors import OperatorError
from deploytools.ui import Ui


@dataclass(frozen=True)
class Outcome:
    target: str
    ok: bool
    detail: str = ""


@dataclass
class Project:
    """The project under check: its config file, environments and loaded settings."""

    config: Path
    environments: list[str]
    _settings: dict[str, EnvironmentSettings | OperatorError] = field(default_factory=dict)

    def settings(self, env: str) -> EnvironmentSettings:
        """The environment's settings; raises the same ``OperatorError`` every time it is asked."""
        if env not in self._settings:
            try:
                self._settings[env] = load_settings(env, config_path=self.config)
            except OperatorError as exc:
                self._settings[env] = exc
        found = self._settings[env]
        if isinstance(found, OperatorError):
            raise found
        return found


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Project], list[Outcome]]


def check_config(project: Project) -> list[Outcome]:
    """Every environment of deploy.toml loads: no unknown key, no wrong type, nothing missing."""
    outcomes = []
    for env in project.environments:
        try:
            project.settings(env)
        except OperatorError as exc:
            outcomes.append(Outcome(env, False, exc.problem))
        else:
            outcomes.append(Outcome(env, True, "valid"))
    return outcomes


def check_env_examples(project: Project) -> list[Outcome]:
    """Each environment's *.env.example: well-formed, every required key, no key without rule."""
    outcomes = []
    for env in project.environments:
        try:
            conf = project.settings(env)
            rules = rules_for(conf)
        except OperatorError as exc:
            outcomes.append(Outcome(env, False, exc.problem.splitlines()[0]))
            continue
        target = conf.env_example
        path = conf.path(conf.env_example)
        if not path.is_file():
            outcomes.append(Outcome(target, False, f"{path} not found"))
            continue
        findings = check_example(envfile.parse(path.read_bytes()), rules)
        errors = [f for f in findings if f.severity == "error"]
        for f in findings:
            where = f"line {f.line}: " if f.line else ""
            outcomes.append(Outcome(target, f.severity != "error", f"{where}{f.problem}"))
        if not errors:
            outcomes.append(Outcome(target, True, "well-formed, every required key, all known"))
    return outcomes


def check_migrations(project: Project) -> list[Outcome]:
    """Migration safety (``db.lint``) per environment: risky SQL is an error in production."""
    from deploytools.db.lint import migration_safety

    outcomes = []
    for env in project.environments:
        try:
            report = migration_safety(project.settings(env))
        except OperatorError as exc:
            outcomes.append(Outcome(env, False, exc.problem.splitlines()[0]))
            continue
        outcomes += [Outcome(env, f.severity != "error", str(f)) for f in report.findings]
        if report.ok:
            outcomes.append(Outcome(env, True, f"{len(report.warnings)} warning(s), no error"))
    return outcomes


CHECKS: list[Check] = [
    Check("config", check_config),
    Check("env examples", check_env_examples),
    Check("migrations", check_migrations),
]


def run(project: Project, checks: Sequence[Check]) -> list[tuple[str, Outcome]]:
    return [(check.name, outcome) for check in checks for outcome in check.run(project)]


def main(argv: Sequence[str] | None = None, ui: Ui | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploytools.verify", description=__doc__)
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="the deploy.toml to check")
    parser.add_argument("--env", help="check only this environment (default: every one)")
    parser.add_argument(
        "--only", action="append", choices=[c.name for c in CHECKS], help="run only this check"
    )
    args = parser.parse_args(argv)
    ui = ui or Ui()
    try:
        config = find_config(args.config)
        project = Project(config, sorted(read_deploy_file(config).environments))
    except OperatorError as exc:
        ui.error(exc.problem, exc.fix)
        return 1
    if args.env is not None:
        if args.env not in project.environments:
            ui.error(
                f"no environment {args.env!r} in {config}",
                f"pass --env with one of: {', '.join(project.environments) or '(none)'}",
            )
            return 2
        project.environments = [args.env]
    checks = [c for c in CHECKS if not args.only or c.name in args.only]
    results = run(project, checks)
    rows = [(name, o.target, "ok" if o.ok else "FAILED", o.detail) for name, o in results]
    ui.table(f"verify {config}", ["check", "target", "result", "detail"], rows)
    failed = sum(1 for _, o in results if not o.ok)
    if failed:
        ui.error(f"{failed} check(s) failed", "correct the items marked FAILED above")
        return 1
    ui.success(f"all {len(results)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
