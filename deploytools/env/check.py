"""The value rules of an env file: each problem becomes a ``Finding`` that never holds the value.

A value is shown (as ``got '...'``) only for keys that are not secret and whose format is a
short enumerable one (numbers, booleans, choices); anything else is described, not quoted.
Checks run per key in order of precedence: a missing or placeholder value is reported alone,
since format and strength problems of a placeholder are noise. A rule switched off is not
checked, so the checks after it still run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping
from urllib.parse import urlsplit

from deploytools import dburl
from deploytools.env.file import EnvDocument
from deploytools.env.rules import PRODUCTION, EnvRules, KeyRule
from deploytools.findings import Finding
from deploytools.redact import Redactor, url_password

SHOWN_FORMATS = {"int", "number", "bool", "percent", "choice"}
BOOLS = {"true", "false", "1", "0", "yes", "no", "on", "off"}
SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]{0,30}")
WEAK_SUFFIX = "0123456789!@#$%^&*._-+=?~"
CLASSES = "lower case, upper case, digits, symbols"


def learn_secrets(redactor: Redactor, doc: EnvDocument, rules: EnvRules) -> None:
    """Teach ``redactor`` every secret of ``doc``, malformed lines and duplicates included."""
    pairs = list(doc.assignments())
    redactor.learn_env(pairs, [k for k, _ in pairs if rules.is_secret(k)])
    for fragment in doc.fragment_texts:
        redactor.add(fragment)


def published_secrets(example: EnvDocument | None, rules: EnvRules) -> set[str]:
    """Secret values of the example file (and passwords in its URLs): published, so weak."""
    if example is None:
        return set()
    found: set[str] = set()
    for key, value in example.assignments():
        if value and rules.is_secret(key):
            found.add(value)
        if pw := url_password(value):
            found.add(pw)
    return found


def check_values(
    values: Mapping[str, str],
    lines: Mapping[str, int],
    rules: EnvRules,
    published: set[str],
    broken: Collection[str] = (),
) -> list[Finding]:
    """Every value rule for every key in the file, and every required key.

    A key in ``broken`` (its line is malformed, already reported) is not reported missing too.
    """
    required = [k for k in rules.required_keys() if k not in broken]
    keys = list(dict.fromkeys([*values, *required]))
    findings: list[Finding] = []
    for key in keys:
        findings += check_key(key, values.get(key), rules, lines.get(key), published)
    return findings


def check_key(
    key: str, value: str | None, rules: EnvRules, line: int | None, published: set[str]
) -> list[Finding]:
    """The problems of one key; in production, those only production rules find are so named."""
    if rules.base is None:
        return rules.keep(_check_key(key, value, rules, line, published))
    found = rules.keep(_check_key(key, value, rules.base, line, published))
    if found:
        return found
    return rules.keep(
        rules.finding(PRODUCTION, f.problem, f.fix, f.key, f.line)
        for f in rules.keep(_check_key(key, value, rules, line, published))
    )


def _check_key(
    key: str, value: str | None, rules: EnvRules, line: int | None, published: set[str]
) -> list[Finding]:
    found = rules.rule_for(key)
    rule = found[1] if found else KeyRule()

    def finding(kind: str, problem: str, fix: str) -> Finding:
        return rules.finding(kind, problem, fix, key, line)

    about = f": {rule.description}" if rule.description else ""
    if rule.managed:
        if value is None:
            return []
        return [finding("managed", f"{key} is set by the deploy{about}", "remove this line")]
    if not value:
        if not rule.required:
            return []
        state = "missing" if value is None else "empty"
        return [finding("required", f"required key {key} is {state}", f"set {key}{about}")]
    secret = rules.is_secret(key)
    placeholder = _placeholder(key, value, rule, rules, secret, about)
    if placeholder and rules.checks("placeholder"):
        return [finding("placeholder", *placeholder)]
    weak = _weakness(key, value, rules, published, secret)
    if weak and rules.checks("weak-value"):
        return [finding("weak-value", *weak)]
    out = [
        finding("format", problem, f"set {key} to {want}")
        for problem, want in _format(key, value, rule, rules, secret)
    ]
    if rule.format == "password":
        out += [
            finding("strength", f"{key} {p}", _new_secret_fix(key))
            for p in _strength(value, rule, rules)
        ]
    return out


def _placeholder(
    key: str, value: str, rule: KeyRule, rules: EnvRules, secret: bool, about: str
) -> tuple[str, str] | None:
    """(problem, fix) when ``value`` was never filled in."""
    if any(p.search(value) for p in rules.placeholders):
        return (
            f"{key} still holds a placeholder (your_..., <...>, changeme, xxx, TODO, ...)",
            f"set the real value of {key}{about}",
        )
    if rules.non_ascii and (secret or rule.format != "text") and not value.isascii():
        return _non_ascii(key, value, rule.format, secret)
    return None


def _weakness(
    key: str, value: str, rules: EnvRules, published: set[str], secret: bool
) -> tuple[str, str] | None:
    """(problem, fix) when a secret, or the password inside a URL, is weak."""
    weak = _weak(key, value, rules, published) if secret else None
    if weak:
        return f"the value of {key} {weak}", _new_secret_fix(key)
    pw = url_password(value)
    weak = _weak(key, pw, rules, published) if pw else None
    if weak:
        return f"the password in {key} {weak}", f"use a strong password in {key}"
    return None


def _new_secret_fix(key: str) -> str:
    command = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'
    return f"set {key} to a new random value, e.g. from: {command}"


def _non_ascii(key: str, value: str, kind: str, secret: bool) -> tuple[str, str]:
    """(problem, fix) of a secret or formatted value that is not ASCII; where, never what."""
    position = next(i for i, c in enumerate(value, 1) if not c.isascii())
    what = "URLs" if kind == "url" else "secrets and keys" if secret else f"{kind} values"
    problem = (
        f"{key} has a non-ASCII character (character {position}): {what} must be ASCII, as many "
        "clients and URL parsers cannot carry anything else, and such text is often a "
        "placeholder in another language (or a pasted non-breaking space or curly quote)"
    )
    encode = ", percent-encoded where a URL needs it" if kind == "url" else ""
    return problem, f"set the real value of {key} in ASCII characters only{encode}"


def _weak(key: str, value: str, rules: EnvRules, published: set[str]) -> str | None:
    lower = value.lower()
    weak = {w.lower() for w in rules.password.weak_values}
    if lower in weak or lower.rstrip(WEAK_SUFFIX) in weak:
        return "is a known weak or default value"
    if value in published:
        return "is the one published in the example file"
    if lower == key.lower():
        return "is the key's own name"
    return None


def _strength(value: str, rule: KeyRule, rules: EnvRules) -> list[str]:
    policy = rules.password
    min_length = rule.min_length or policy.min_length
    min_classes = rule.min_classes or policy.min_classes
    problems = []
    if len(value) < min_length:
        problems.append(f"is shorter than {min_length} characters")
    if character_classes(value) < min_classes:
        problems.append(f"uses fewer than {min_classes} kinds of characters ({CLASSES})")
    if len(set(value)) < policy.min_distinct:
        problems.append(f"has fewer than {policy.min_distinct} different characters")
    return problems


def character_classes(value: str) -> int:
    """How many of: lower case, upper case, digits, symbols (anything else) ``value`` mixes."""
    kinds = (
        any(c.islower() for c in value),
        any(c.isupper() for c in value),
        any(c.isdigit() for c in value),
        any(not c.isalnum() for c in value),
    )
    return sum(kinds)


def _format(
    key: str, value: str, rule: KeyRule, rules: EnvRules, secret: bool
) -> Iterable[tuple[str, str]]:
    """(problem, what a good value is) for each format problem."""
    got = f" (got {value!r})" if _showable(value, rule, secret) else ""
    kind = rule.format
    if kind == "url":
        problems = list(_url(key, value, rule, rules))
        if problems:
            yield from problems
            return
    elif kind in ("int", "percent", "number"):
        low, high = (0.0, 100.0) if kind == "percent" else (rule.min, rule.max)
        number = _number(value, integer=kind != "number")
        what = "a whole number" if kind != "number" else "a number"
        if (
            number is None
            or (low is not None and number < low)
            or (high is not None and number > high)
        ):
            state = "not " + what if number is None else "out of range"
            yield f"{key} is {state}{got}", f"{what}{_bounds(low, high)}"
            return
    elif kind == "bool" and value.lower() not in BOOLS:
        yield f"{key} is not a boolean{got}", "true or false"
        return
    elif kind == "pattern" and rule.pattern and not re.fullmatch(rule.pattern, value):
        hint = rule.pattern_hint or "the pattern in the rules file"
        yield f"{key} does not look like {hint}", hint
        return
    if rule.choices and value.lower() not in {c.lower() for c in rule.choices}:
        choices = ", ".join(rule.choices)
        yield f"{key} must be one of {choices}{got}", f"one of {choices}"


def _url(key: str, value: str, rule: KeyRule, rules: EnvRules) -> Iterable[tuple[str, str]]:
    allowed = ", ".join(f"{s}://" for s in rule.schemes) or "scheme://..."
    scheme, sep, rest = value.partition("://")
    if not sep or not SCHEME.fullmatch(scheme):
        yield f"{key} is not a URL", f"a URL: {allowed}"
        return
    scheme = scheme.lower()
    if rule.schemes and not _scheme_allowed(scheme, rule.schemes):
        yield (
            f"{key} uses {scheme}://, which is not allowed here",
            f"a URL with one of {allowed}",
        )
        return
    base = scheme.partition("+")[0]  # sqlite+aiosqlite is a sqlite URL
    if base in rules.hostless_schemes:
        if base == "sqlite" and not rest.startswith("/"):
            yield (
                f"{key} is a sqlite URL without a path",
                "sqlite:///relative/path or sqlite:////absolute/path",
            )
        return
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        yield (
            f"{key} has an invalid port or address",
            f"a URL such as {scheme}://host:port/...",
        )
        return
    if not parts.hostname:
        yield f"{key} has no host name", f"a URL such as {scheme}://host:port/..."
    elif dburl.is_postgres(value):
        try:
            dburl.normalise(value, key)  # as the backups and migrations will take it
        except dburl.UrlProblem as exc:
            yield exc.problem, exc.want


def _scheme_allowed(scheme: str, allowed: Iterable[str]) -> bool:
    """An allowed ``postgresql`` allows SQLAlchemy's ``postgresql+asyncpg`` too: a rule names
    the kind of server, the driver is the app's choice (its options are checked with the URL)."""
    names = {a.lower() for a in allowed}
    return scheme in names or scheme.partition("+")[0] in names


def _number(value: str, *, integer: bool) -> float | None:
    try:
        number = float(int(value, 10)) if integer else float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _bounds(low: float | None, high: float | None) -> str:
    def fmt(x: float) -> str:
        return str(int(x)) if x == int(x) else str(x)

    if low is not None and high is not None:
        return f" from {fmt(low)} to {fmt(high)}"
    if low is not None:
        return f" of at least {fmt(low)}"
    return f" of at most {fmt(high)}" if high is not None else ""


def _showable(value: str, rule: KeyRule, secret: bool) -> bool:
    return (
        not secret
        and rule.format in SHOWN_FORMATS
        and len(value) <= 40
        and value.isascii()
        and value.isprintable()
    )


def check_example(example: EnvDocument, rules: EnvRules) -> list[Finding]:
    """Structure only (its values are placeholders by design): lines, required and known keys."""
    findings = [rules.apply_severity(f) for f in example.findings]
    lines = example.line_of()
    for key in rules.required_keys():
        if key not in lines:
            findings.append(
                rules.finding("required", f"required key {key} is missing", f"add {key}=...", key)
            )
    for key, line in lines.items():
        found = rules.rule_for(key)
        if found is None:
            findings.append(
                rules.finding(
                    "unknown-key",
                    f"{key} has no rule in {rules.source.name}",
                    f"add [keys.{key}] to {rules.source.name} (or remove it from the example)",
                    key,
                    line,
                )
            )
        elif found[1].managed:
            findings.append(
                rules.finding(
                    "managed", f"{key} is set by the deploy", "remove this line", key, line
                )
            )
    return rules.keep(findings)
