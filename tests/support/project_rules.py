"""The example project's own env rules, resolved per environment (shared by the env tests)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from deploytools.env.rules import EnvRules, parse_rules, resolve

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENVS = {"prod"}


@cache
def rules(env: str) -> EnvRules:
    path = ROOT / "config/env.rules.toml"
    text = path.read_text(encoding="utf-8")
    return resolve(parse_rules(text, path), env, env in PRODUCTION_ENVS, path)
