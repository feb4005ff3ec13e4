"""``env.init``: an env file made from its example, with fresh secrets, never over an old one.

Keys whose rule says ``generate = true`` get a random URL-safe value from ``secrets`` that
passes the same strength and placeholder rules ``env.validate`` applies. Where the example's
placeholder for such a key also appears inside another value (the password inside
``DATABASE_URL``), it is replaced there too, so the two stay in step.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from deploytools.env import check as envcheck
from deploytools.env import file as envfile
from deploytools.env.file import EnvDocument
from deploytools.env.rules import EnvRules
from deploytools.errors import OperatorError
from deploytools.hosts.base import Host

MIN_GENERATED = 32
MIN_SUBSTITUTED = 5  # a shorter placeholder could match inside an unrelated value
MAX_TRIES = 100


@dataclass(frozen=True)
class InitResult:
    path: Path
    generated: list[str]
    to_fill: list[str]  # keys whose values still need a human (API keys, hosts, ...)


def generate_secret(key: str, rules: EnvRules) -> str:
    """A fresh value that passes the key's own rules (retried: a random draw can miss one)."""
    found = rules.rule_for(key)
    min_length = (found[1].min_length if found else None) or rules.password.min_length
    length = max(min_length, MIN_GENERATED) + 8
    for _ in range(MAX_TRIES):
        value = secrets.token_urlsafe(length)[:length]
        if not envcheck.check_key(key, value, rules, None, set()):
            return value
    raise RuntimeError(f"no random value for {key} passed its rules in {MAX_TRIES} draws")


def fill(example: EnvDocument, rules: EnvRules) -> tuple[EnvDocument, list[str]]:
    """The example with every ``generate`` key set to a fresh secret; the keys generated."""
    doc = example
    generated = []
    for key, placeholder in list(example.values().items()):
        found = rules.rule_for(key)
        if not (found and found[1].generate):
            continue
        value = generate_secret(key, rules)
        doc = doc.set(key, value)
        generated.append(key)
        if len(placeholder) >= MIN_SUBSTITUTED:
            for other, text in list(doc.values().items()):
                if other != key and placeholder in text:
                    doc = doc.set(other, text.replace(placeholder, value))
    return doc, generated


def init_env_file(host: Host, target: Path, example_path: Path, rules: EnvRules) -> InitResult:
    """Write ``target`` (mode 0600) from ``example_path``; refuse if ``target`` exists."""
    if host.exists(str(target)):
        raise OperatorError(
            f"env file {target} already exists; env.init never overwrites one",
            "edit it (then run invoke env.validate), or move it away first to start over",
        )
    if not host.exists(str(example_path)):
        raise OperatorError(
            f"example file {example_path} not found",
            "create it with every key of the environment (see config/*.env.example)",
        )
    example = envfile.parse(host.read_file(str(example_path)))
    if example.findings:
        lines = ", ".join(str(f.line) for f in example.findings)
        raise OperatorError(
            f"example file {example_path} has malformed lines ({lines})",
            "fix them first: nox -s verify lists every problem",
        )
    doc, generated = fill(example, rules)
    host.makedirs(str(target.parent))
    envfile.write(host, str(target), doc)
    problems = envcheck.check_values(doc.values(), doc.line_of(), rules, set())
    to_fill = sorted({f.key for f in problems if f.key})
    return InitResult(target, generated, to_fill)
