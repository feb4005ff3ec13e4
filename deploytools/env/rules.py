"""Env rules as data: the built-in rules, a project's ``config/env.rules.toml`` over them,
loaded into frozen models and resolved per environment.

The built-in rules (``deploytools/rules/default.env.rules.toml``) hold what every project needs:
severities, placeholders, weak values, secret-looking names. A project's file is optional and
merged over them before validation (``merge``), so an error names the project's file and the
exact key path. A rules file has a base layer (``[keys]``), a production layer applied to
environments marked ``production = true`` and one layer per environment name. A production
environment keeps its rules without the production layer as ``base``: a problem found only with
that layer is a production-only problem. The layers are merged per key.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, field_validator

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
BUILTIN = "rules/default.env.rules.toml"  # inside the deploytools package
FIX = f"correct these keys (deploytools/{BUILTIN} shows every key of a rules file)"

# Every rule a finding can carry, so a typo in [severity] is an error rather than ignored.
RULE_NAMES = frozenset(
    {
        "syntax", "bom", "unterminated-quote", "duplicate", "empty-comment", "required",
        "format", "placeholder", "weak-value", "strength", "managed", "production",
        "file-mode", "git-tracked", "git-ignore", "git-unavailable", "example-missing",
        "example-unknown", "no-example", "unknown-key", "too-large", "compose-value",
    }
)  # fmt: skip
# Lists a project's rules file adds to instead of replacing: ``(table, key)``.
ADDED_LISTS = (("password", "weak_values"), ("urls", "hostless_schemes"))

Level = Literal["error", "warning", "off"]  # "off": the rule is not checked at all
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


# The policies have no defaults here: the built-in rules file is where their values live.
class PasswordPolicy(Model):
    min_length: int = Field(ge=1)
    min_classes: int = Field(ge=1, le=4)
    min_distinct: int = Field(ge=1)
    weak_values: list[str]


def _pattern_or_off(value: Any) -> str | Literal[False]:
    """A placeholder pattern: a regular expression, or false (a built-in one switched off)."""
    if value is False:
        return False
    if not isinstance(value, str) or not value:
        raise ValueError("expected a regular expression, or false to switch a built-in one off")
    return _compiles(value)


class PlaceholderPolicy(Model):
    # by name, so that a project can switch one off
    patterns: dict[str, Annotated[str | Literal[False], PlainValidator(_pattern_or_off)]]
    non_ascii: bool


class UrlPolicy(Model):
    hostless_schemes: list[str]


class Layer(Model):
    keys: dict[str, dict[str, Any]] = Field(default_factory=dict)
    severity: dict[str, Level] = Field(default_factory=dict)

    @field_validator("severity")
    @classmethod
    def _known_rules(cls, value: dict[str, Level]) -> dict[str, Level]:
        unknown = sorted(set(value) - RULE_NAMES)
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}; known: {', '.join(sorted(RULE_NAMES))}")
        return value


class RulesFile(Layer):
    password: PasswordPolicy
    placeholders: PlaceholderPolicy
    urls: UrlPolicy
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
    off: frozenset[str]  # rules switched off: their findings are dropped
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

    def checks(self, rule: str) -> bool:
        return rule not in self.off

    def keep(self, findings: Iterable[Finding]) -> list[Finding]:
        """``findings`` without those of rules switched off."""
        return [f for f in findings if f.rule not in self.off]


def _is_glob(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def rules_path(settings: EnvironmentSettings) -> Path:
    return settings.path(settings.env_rules)


def read_rules_file(path: Path, *, required: bool = False) -> RulesFile:
    """The built-in rules with the project's file at ``path`` over them; without that file the
    built-in rules alone, unless the project named the file itself (``required``)."""
    if not required and not path.exists():
        return parse_rules("", path)
    missing = OperatorError(
        f"env rules file {path} not found",
        "correct env_rules in config/deploy.toml, or remove it to use the built-in rules only",
    )
    return parse_rules(read_text(path, missing=missing), path)


@cache
def _builtin() -> dict[str, Any]:
    from importlib.resources import files

    resource = files("deploytools").joinpath(BUILTIN)
    return parse_toml(resource.read_text(encoding="utf-8"), f"deploytools/{BUILTIN}")


def builtin_rules() -> dict[str, Any]:
    """The built-in rules as parsed from their TOML (a fresh copy: callers may change it)."""
    return copy.deepcopy(_builtin())


def merge(builtin: Mapping[str, Any], project: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The project's rules over the built-in ones, key by key.

    Tables merge recursively (a project's ``[keys.X]`` changes only the fields it sets); a
    value replaces the built-in one, lists too, except ``ADDED_LISTS``, which the project's
    entries extend. A placeholder pattern set to ``false`` switches a built-in one off; naming
    one that is not built in is an error (a typo would otherwise leave it on).
    """
    merged = deep_merge(builtin, project)
    for table, key in ADDED_LISTS:
        below, above = _get(builtin, table, key), _get(project, table, key)
        if isinstance(below, list) and isinstance(above, list):
            merged[table][key] = [*below, *(v for v in above if v not in below)]
    known = _get(builtin, "placeholders", "patterns")
    patterns = _get(project, "placeholders", "patterns")
    if isinstance(known, Mapping) and isinstance(patterns, Mapping):
        unknown = sorted(n for n, p in patterns.items() if p is False and n not in known)
        if unknown:
            raise OperatorError(
                f"{path}: placeholders.patterns.{unknown[0]}: there is no built-in placeholder "
                f"pattern {unknown[0]!r} to switch off (built in: {', '.join(known)})",
                f"name a pattern of deploytools/{BUILTIN}, or give one of your own a regular "
                "expression",
            )
    return merged


def _get(raw: Mapping[str, Any], table: str, key: str) -> Any:
    found = raw.get(table)
    return found.get(key) if isinstance(found, Mapping) else None


def parse_rules(text: str, path: Path) -> RulesFile:
    """The built-in rules with the project's rules file (its ``text``) over them; errors name
    ``path`` and the key path."""
    raw = merge(builtin_rules(), parse_toml(text, path), path)
    rules = validate_model(RulesFile, raw, path, fix=FIX)
    layers = [("keys", rules.keys), ("production.keys", rules.production.keys)]
    layers += [(f"environments.{n}.keys", layer.keys) for n, layer in rules.environments.items()]
    for where, entries in layers:
        for name, entry in entries.items():
            validate_model(KeyRule, entry, path, prefix=f"{where}.{name}", fix=FIX)
    return rules


def resolve(rules: RulesFile, env: str, production: bool, path: Path) -> EnvRules:
    """The rules of environment ``env``: base, then production, then its own layer."""
    layers = [rules.production] if production else []
    if env in rules.environments:
        layers.append(rules.environments[env])
    merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in rules.keys.items()}
    levels: dict[str, Level] = dict(rules.severity)
    for layer in layers:
        for name, entry in layer.keys.items():
            merged[name] = deep_merge(merged.get(name, {}), entry)
        levels.update(layer.severity)
    keys = {
        name: validate_model(
            KeyRule, entry, path, prefix=f"keys.{name} (as merged for {env})", fix=FIX
        )
        for name, entry in merged.items()
    }
    severity: dict[str, Severity] = {r: v for r, v in levels.items() if v != "off"}
    off = frozenset(r for r, v in levels.items() if v == "off")
    # The base differs in its key rules only: a rule is as severe (or off) for the whole
    # environment, not one way for what the base finds and another for the rest.
    base = resolve(rules, env, False, path) if production else None
    return EnvRules(
        env=env,
        source=path,
        keys=keys,
        base=replace(base, severity=severity, off=off) if base else None,
        severity=severity,
        off=off,
        password=rules.password,
        placeholders=tuple(re.compile(p) for p in rules.placeholders.patterns.values() if p),
        non_ascii=rules.placeholders.non_ascii,
        hostless_schemes=frozenset(rules.urls.hostless_schemes),
    )


def rules_for(settings: EnvironmentSettings) -> EnvRules:
    path = rules_path(settings)
    named = "env_rules" in settings.model_fields_set  # the default file may be absent
    rules = read_rules_file(path, required=named)
    return resolve(rules, settings.name, settings.production, path)
