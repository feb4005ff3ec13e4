"""Env rules as data: ``config/env.rules.toml`` loaded into frozen models, resolved per environment.

The file has a base layer (``[keys]``), a production layer applied to environments marked
``production = true`` and one layer per environment name. A production environment keeps its
rules without the production layer as ``base``: a problem found only with that layer is a
production-only problem. Each entry is validated where it
stands, so an error names the file and the exact key path; the layers are then merged per key.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from deploytools.config import (
    EnvironmentSettings,
    Model,
    deep_merge,
    parse_toml,
    read_text,
    validate_model,
)
from deploytools.errors import OperatorError
from deploytools.findings import Finding, Severity
from deploytools.redact import is_secret_name

PRODUCTION = "production"

# Every rule a finding can carry, so a typo in [severity] is an error rather than ignored.
RULE_NAMES = frozenset(
    {
        "syntax", "bom", "unterminated-quote", "duplicate", "empty-comment", "required",
        "format", "placeholder", "weak-value", "strength", "managed", "production",
        "file-mode", "git-tracked", "git-ignore", "git-unavailable", "example-missing",
        "example-unknown", "no-example", "unknown-key", "too-large", "compose-value",
    }
)  # fmt: skip
# Rules that only warn unless the rules file says otherwise (the rest are errors).
WARNING_RULES: dict[str, Severity] = {"compose-value": "warning"}

Format = Literal["text", "url", "int", "number", "bool", "percent", "choice", "pattern", "password"]


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return pattern


class KeyRule(Model):
    description: str = ""
    required: bool = False
    secret: bool = False
    generate: bool = False
    managed: bool = False
    format: Format = "text"
    schemes: list[str] = Field(default_factory=list)
    min: float | None = None
    max: float | None = None
    choices: list[str] = Field(default_factory=list)
    pattern: str | None = None
    pattern_hint: str = ""
    min_length: int | None = Field(None, ge=1)
    min_classes: int | None = Field(None, ge=1, le=4)

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        return value if value is None else _compiles(value)

    @property
    def is_secret(self) -> bool:
        return self.secret or self.format == "password" or self.generate


class PasswordPolicy(Model):
    min_length: int = Field(16, ge=1)
    min_classes: int = Field(3, ge=1, le=4)
    min_distinct: int = Field(8, ge=1)
    weak_values: list[str] = Field(default_factory=list)


class PlaceholderPolicy(Model):
    patterns: list[str] = Field(default_factory=list)
    non_ascii: bool = True

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        return [_compiles(p) for p in value]


class UrlPolicy(Model):
    hostless_schemes: list[str] = Field(default_factory=lambda: ["sqlite", "file", "filesystem"])


class Layer(Model):
    keys: dict[str, dict[str, Any]] = Field(default_factory=dict)
    severity: dict[str, Severity] = Field(default_factory=dict)

    @field_validator("severity")
    @classmethod
    def _known_rules(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        unknown = sorted(set(value) - RULE_NAMES)
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}; known: {', '.join(sorted(RULE_NAMES))}")
        return value


class RulesFile(Layer):
    password: PasswordPolicy = Field(default_factory=PasswordPolicy)
    placeholders: PlaceholderPolicy = Field(default_factory=PlaceholderPolicy)
    urls: UrlPolicy = Field(default_factory=UrlPolicy)
    production: Layer = Field(default_factory=Layer)
    environments: dict[str, Layer] = Field(default_factory=dict)


@dataclass(frozen=True)
class EnvRules:
    """The rules for one environment: layers merged, patterns compiled."""

    env: str
    source: Path
    keys: dict[str, KeyRule]
    base: EnvRules | None  # production: the same rules without the production layer
    severity: dict[str, Severity]
    password: PasswordPolicy
    placeholders: tuple[re.Pattern[str], ...]
    non_ascii: bool
    hostless_schemes: frozenset[str]

    def rule_for(self, key: str) -> tuple[str, KeyRule] | None:
        """The rule for ``key``: its exact entry, else the longest matching glob."""
        if key in self.keys:
            return key, self.keys[key]
        globs = [n for n in self.keys if _is_glob(n) and fnmatch.fnmatchcase(key, n)]
        if not globs:
            return None
        name = max(globs, key=len)
        return name, self.keys[name]

    def is_secret(self, key: str) -> bool:
        found = self.rule_for(key)
        return is_secret_name(key) or (found is not None and found[1].is_secret)

    def required_keys(self) -> list[str]:
        return [n for n, r in self.keys.items() if r.required and not _is_glob(n)]

    def finding(
        self, rule: str, problem: str, fix: str = "", key: str = "", line: int | None = None
    ) -> Finding:
        return Finding(rule, problem, fix, key, line, self.severity.get(rule, "error"))

    def apply_severity(self, finding: Finding) -> Finding:
        return finding.with_severity(self.severity.get(finding.rule, "error"))


def _is_glob(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def rules_path(settings: EnvironmentSettings) -> Path:
    return settings.path(settings.env_rules)


def read_rules_file(path: Path) -> RulesFile:
    missing = OperatorError(
        f"env rules file {path} not found",
        "create it (see config/env.rules.toml in the deploytools example project)",
    )
    return parse_rules(read_text(path, missing=missing), path)


def parse_rules(text: str, path: Path) -> RulesFile:
    """Validate the rules file's text; errors name ``path`` and the key path."""
    rules = validate_model(RulesFile, parse_toml(text, path), path)
    layers = [("keys", rules.keys), ("production.keys", rules.production.keys)]
    layers += [(f"environments.{n}.keys", layer.keys) for n, layer in rules.environments.items()]
    for where, entries in layers:
        for name, entry in entries.items():
            validate_model(KeyRule, entry, path, prefix=f"{where}.{name}")
    return rules


def resolve(rules: RulesFile, env: str, production: bool, path: Path) -> EnvRules:
    """The rules of environment ``env``: base, then production, then its own layer."""
    layers = [rules.production] if production else []
    if env in rules.environments:
        layers.append(rules.environments[env])
    merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in rules.keys.items()}
    severity = {**WARNING_RULES, **rules.severity}
    for layer in layers:
        for name, entry in layer.keys.items():
            merged[name] = deep_merge(merged.get(name, {}), entry)
        severity.update(layer.severity)
    keys = {
        name: validate_model(KeyRule, entry, path, prefix=f"keys.{name} (as merged for {env})")
        for name, entry in merged.items()
    }
    return EnvRules(
        env=env,
        source=path,
        keys=keys,
        base=resolve(rules, env, False, path) if production else None,
        severity=severity,
        password=rules.password,
        placeholders=tuple(re.compile(p) for p in rules.placeholders.patterns),
        non_ascii=rules.placeholders.non_ascii,
        hostless_schemes=frozenset(rules.urls.hostless_schemes),
    )


def rules_for(settings: EnvironmentSettings) -> EnvRules:
    path = rules_path(settings)
    return resolve(read_rules_file(path), settings.name, settings.production, path)
