"""``env.validate``: every problem of one env file at once, from its lines, values, mode and git.

The env file lives on the control machine; git is asked through a ``Host`` (a unit test fakes
it). The report holds findings only, never values, and is rendered through the ``Ui``'s
redactor, which has learned the file's secrets first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploytools import launch
from deploytools.commands import git
from deploytools.config import EnvironmentSettings
from deploytools.env import check as envcheck
from deploytools.env import compose as envcompose
from deploytools.env import file as envfile
from deploytools.env.check import learn_secrets
from deploytools.env.file import EnvDocument
from deploytools.env.rules import EnvRules, rules_for
from deploytools.errors import CommandError, OperatorError
from deploytools.findings import Finding, count
from deploytools.hosts.base import Host
from deploytools.platform import private_file_mode_ok
from deploytools.redact import Redactor, url_password
from deploytools.ui import Ui

GIT_TIMEOUT = 10.0


@dataclass
class Report:
    env: str
    file: str
    keys: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return count(self.findings, "error")

    @property
    def warnings(self) -> int:
        return count(self.findings, "warning")

    def as_json(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "file": self.file,
            "ok": self.errors == 0,
            "errors": self.errors,
            "warnings": self.warnings,
            "keys": self.keys,
            "findings": [f.as_dict() for f in self.findings],
        }


def validate_environment(
    settings: EnvironmentSettings, ui: Ui, control: Host, path: Path | None = None
) -> Report:
    """Read the env file (or ``path``) on the ``control`` machine, teach ``ui`` its secrets
    first, then check it all."""
    rules = rules_for(settings)
    target = path or settings.path(settings.env_file)
    doc = envfile.read(target)
    learn_secrets(ui.redact, doc, rules)
    return validate(doc, target, settings, rules, control, read_example(settings))


def learned_values(settings: EnvironmentSettings, redactor: Redactor) -> dict[str, str]:
    """The env file's values, once ``redactor`` has learnt every secret in it: keys the rules
    mark secret, secret-looking names, URL passwords, repeated and malformed lines. Every task
    that reads the env file reads it through here, so none masks less than ``env.validate``."""
    path = settings.path(settings.env_file)
    values = envfile.load_values(path)
    learn_all(redactor, envfile.read(path), settings)
    return values


def learn_all(redactor: Redactor, doc: EnvDocument, settings: EnvironmentSettings) -> None:
    """Teach ``redactor`` the secrets of ``doc`` by the environment's rules; with a broken
    rules file (reported elsewhere), secret-looking names and URL passwords only."""
    try:
        rules = rules_for(settings)
    except OperatorError:
        redactor.learn_env(list(doc.assignments()))
        for fragment in doc.fragment_texts:
            redactor.add(fragment)
    else:
        learn_secrets(redactor, doc, rules)


def read_example(settings: EnvironmentSettings) -> EnvDocument | None:
    path = settings.path(settings.env_example)
    return envfile.parse(path.read_bytes()) if path.is_file() else None


def validate(
    doc: EnvDocument,
    path: Path,
    settings: EnvironmentSettings,
    rules: EnvRules,
    host: Host,
    example: EnvDocument | None,
) -> Report:
    """Check ``doc`` (read from ``path``) against ``rules`` and the environment's example."""
    values = doc.values()
    findings = [rules.apply_severity(f) for f in doc.findings]
    published = envcheck.published_secrets(example, rules)
    broken = {f.key for f in doc.findings if f.key}
    findings += envcheck.check_values(values, doc.line_of(), rules, published, broken)
    findings += [rules.apply_severity(f) for f in launch.env_file_findings(values, doc.line_of())]
    if settings.runtime == "compose":
        findings += [rules.apply_severity(f) for f in envcompose.compose_findings(doc)]
    findings += compare_with_example(doc, example, settings.env_example, rules)
    if holds_secrets(doc, rules):
        findings += check_mode(path, rules)
    findings += check_git(path, host, rules)
    shown = display_path(path, settings.root)
    return Report(settings.name, shown, len(values), rules.keep(findings))


def compare_with_example(
    doc: EnvDocument, example: EnvDocument | None, example_name: str, rules: EnvRules
) -> list[Finding]:
    if example is None:
        return [
            rules.finding(
                "no-example",
                f"the example file {example_name} does not exist: keys are not compared",
                f"create {example_name} with every key and placeholder values",
            )
        ]
    ours, theirs = doc.line_of(), example.line_of()
    findings = []
    for key, line in ours.items():
        found = rules.rule_for(key)
        if key not in theirs and not (found and found[1].managed):
            findings.append(
                rules.finding(
                    "example-unknown",
                    f"{key} is not in {example_name}",
                    f"a typo? otherwise add {key} to {example_name}",
                    key,
                    line,
                )
            )
    required = set(rules.required_keys())
    for key in theirs:
        if key not in ours and key not in required:
            findings.append(
                rules.finding(
                    "example-missing",
                    f"{key} (in {example_name}) is not set here: the app uses its default",
                    f"add {key}= to the env file to make the choice explicit",
                    key,
                )
            )
    return findings


def holds_secrets(doc: EnvDocument, rules: EnvRules) -> bool:
    return bool(doc.fragment_texts) or any(
        value and (rules.is_secret(key) or url_password(value)) for key, value in doc.assignments()
    )


def check_mode(path: Path, rules: EnvRules) -> list[Finding]:
    mode = path.stat().st_mode & 0o777
    if private_file_mode_ok(mode):
        return []
    return [
        rules.finding(
            "file-mode",
            f"{path.name} holds secrets and group/others may read it (mode {mode:04o})",
            f"chmod 600 {path}",
        )
    ]


def check_git(path: Path, host: Host, rules: EnvRules) -> list[Finding]:
    """Tracked: an error (the secrets are in the history). Not ignored: a warning."""
    where = str(path.parent)
    try:
        tracked = host.run(git.ls_files(str(path)), cwd=where, check=False, timeout=GIT_TIMEOUT)
        if tracked.returncode not in (0, 1):
            return []  # not inside a git work tree: nothing can leak through git
        if tracked.ok:
            return [
                rules.finding(
                    "git-tracked",
                    f"{path.name} is tracked by git: its secrets are in the repository history",
                    f"git rm --cached {path}, add it to .gitignore, and rotate every secret in it",
                )
            ]
        ignored = host.run(git.check_ignore(str(path)), cwd=where, check=False, timeout=GIT_TIMEOUT)
    except CommandError as exc:
        return [
            rules.finding(
                "git-unavailable",
                f"could not ask git whether {path.name} is tracked ({exc.problem.splitlines()[0]})",
                "install git, or check by hand that the env file is not committed",
            )
        ]
    if ignored.returncode == 1:
        return [
            rules.finding(
                "git-ignore",
                f"{path.name} is not ignored by git: a `git add .` would commit its secrets",
                f"add {path.name} (or a pattern such as config/*.env) to .gitignore",
            )
        ]
    return []


def display_path(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def show(ui: Ui, report: Report) -> None:
    """The findings as a table on stdout (or JSON), a summary on stderr; errors exit 2."""
    if ui.json_mode:
        ui.emit_json(report.as_json())
    elif report.findings:
        ui.table(
            f"{report.file} ({report.env}): {report.errors} error(s), {report.warnings} warning(s)",
            ["level", "key", "line", "rule", "problem", "fix"],
            [(f.severity, f.key, f.line, f.rule, f.problem, f.fix) for f in report.findings],
            styles=["bold", "cyan", "", "magenta", "", "green"],
        )
    if report.errors:
        raise OperatorError(
            f"{report.file}: {report.errors} error(s), {report.warnings} warning(s)",
            "correct the keys listed, then run invoke env.validate again",
        )
    note = f", {report.warnings} warning(s)" if report.warnings else ""
    ui.success(f"{report.file}: {report.keys} keys valid for {report.env}{note}")
