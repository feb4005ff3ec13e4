"""The flag plan as code: ``config/flags.toml``, its flags and its ordered rollout stages.

    [flags.new-checkout]
    description = "the one-page checkout"
    owner = "shop-team"
    expires = 2027-03-31
    live = ["backend", "worker"]     # read the state file on every call
    start = []                       # read FEATURE_NEW_CHECKOUT at start: recreated on change

    [stages.week2]
    flags = { new-checkout = 10 }    # "off", "on" or a percentage 0-100
    not_before = 2026-12-14
    soak = 600                       # seconds its guards are watched after it is applied
    guards = [{ path = "/metrics", metric = "http_errors_ratio", max = 0.01 }]

A stage sets only the flags it names; the others keep what the stages before it set (the
first starts from each flag's ``default``). A stage that lowers a flag must say ``lower =
true``: a lowering by mistake would silently take a feature from users who had it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from deploytools.config import (
    ENV_KEY,
    SERVICE_NAME,
    Model,
    config_problems,
    parse_toml,
    read_text,
    validate_model,
)
from deploytools.flagclient import env_name
from deploytools.flags.state import shown

FLAG_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
STAGE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
FIX = 'correct these keys (the README\'s "Feature flags" section shows every key)'


def parse_setting(value: object) -> int:
    """A flag's setting as a percentage: "off" is 0, "on" is 100, "25" or "25%" is 25.

    Raises ValueError with the words to show (the tasks' argument parsing uses it too)."""
    if isinstance(value, str):
        text = value.strip().lower().removesuffix("%").strip()
        if text in ("on", "off"):
            return 100 if text == "on" else 0
        if text.isascii() and text.lstrip("-").isdigit():
            value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be on, off or a percentage 0-100")
    if not 0 <= value <= 100:
        raise ValueError("a percentage must be between 0 and 100")
    return value


def _setting(value: Any) -> int:
    try:
        return parse_setting(value)
    except ValueError as exc:
        raise PydanticCustomError("flag_setting", str(exc)) from None


Setting = Annotated[int, BeforeValidator(_setting)]


def _name(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    """A check of a key's name where it stands (also when its value has errors)."""

    def check(name: str) -> str:
        if not pattern.match(name):
            raise PydanticCustomError(
                "name", f"{what} name: lowercase letters, digits, '-' and '_', from a letter"
            )
        return name

    return check


FlagName = Annotated[str, AfterValidator(_name(FLAG_NAME, "flag"))]
StageName = Annotated[str, AfterValidator(_name(STAGE_NAME, "stage"))]


class Guard(Model):
    """A threshold on the app's own numbers, checked while a stage soaks (the health probes
    always are): a field of a JSON response or a Prometheus sample of ``path`` on ``service``."""

    service: str = "backend"
    path: str = Field(pattern=r"^/")
    field: str | None = None  # dotted path in the JSON response, e.g. "errors.rate"
    metric: str | None = Field(default=None, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    # The metric's sample, e.g. {quantile = "0.95"}.
    labels: dict[str, str] = Field(default_factory=dict)
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _one_number_with_a_bound(self) -> Guard:
        if (self.field is None) == (self.metric is None):
            raise ValueError("a guard reads one number: give `field` (JSON) or `metric`")
        if self.max is None and self.min is None:
            raise ValueError("a guard needs `max`, `min` or both")
        if self.labels and self.metric is None:
            raise ValueError("`labels` select a metric's sample: only with `metric`")
        return self


class Flag(Model):
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    expires: date
    env: str | None = None  # FEATURE_<NAME>, what the app's client falls back to
    default: Literal["off", "on"] = "off"
    kill_switch: bool = True
    # Services that read the state file as they run, and those that read the env variable at
    # start only (recreated when it changes).
    live: list[str] = Field(default_factory=list)
    start: list[str] = Field(default_factory=list)

    @field_validator("env")
    @classmethod
    def _env_key(cls, value: str | None) -> str | None:
        if value is not None and not ENV_KEY.fullmatch(value):
            raise ValueError("an environment variable name (letters, digits, '_')")
        return value

    @field_validator("live", "start")
    @classmethod
    def _services(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not SERVICE_NAME.match(name)]
        if bad:
            raise ValueError(f"not a service name: {', '.join(map(repr, bad))}")
        return value

    @model_validator(mode="after")
    def _live_or_start(self) -> Flag:
        both = sorted(set(self.live) & set(self.start))
        if both:
            raise ValueError(f"a service reads a flag live or at start, not both: {both}")
        return self


class Stage(Model):
    flags: dict[str, Setting] = Field(default_factory=dict)
    not_before: datetime | date | None = None
    soak: int = Field(default=0, ge=0)  # seconds
    guards: list[Guard] = Field(default_factory=list)
    lower: bool = False  # this stage lowers a flag on purpose


class Debt(Model):
    """When the verify gate counts a flag as debt (besides its ``expires``): on for everyone
    from a stage whose ``not_before`` is more than ``full_rollout_days`` ago."""

    full_rollout_days: int = Field(default=30, ge=1)


class FlagPlan(Model):
    """``config/flags.toml`` validated: flags by name, stages in the file's order."""

    flags: dict[FlagName, Flag]
    stages: dict[StageName, Stage] = Field(default_factory=dict)
    debt: Debt = Field(default_factory=Debt)

    def initial(self) -> dict[str, int]:
        """Every flag at its default: where the first stage starts from."""
        return {name: parse_setting(flag.default) for name, flag in self.flags.items()}

    def settings(self) -> Iterator[tuple[str, dict[str, int]]]:
        """Each stage with every flag's setting once it is applied, in order."""
        current = self.initial()
        for name, stage in self.stages.items():
            current = current | stage.flags
            yield name, current

    def settings_at(self, stage: str) -> dict[str, int]:
        """Every flag's setting once ``stage`` is applied."""
        return dict(self.settings())[stage]


def load_plan(path: Path) -> FlagPlan:
    """Read and check ``path``; every problem is an operator error naming the file and key."""
    return parse_plan(read_text(path), path)


def parse_plan(text: str, path: str | Path) -> FlagPlan:
    plan = validate_model(FlagPlan, parse_toml(text, path), path, fix=FIX)
    problems = list(_problems(plan))
    if problems:
        raise config_problems(path, problems, FIX)
    return plan


def _problems(plan: FlagPlan) -> Iterator[str]:
    """What no single key can check: names that must agree across the file."""
    for name, spec in plan.flags.items():
        if spec.env is not None and spec.env != env_name(name):
            yield (
                f"flags.{name}.env: must be {env_name(name)}, the variable the app's flag "
                f"client falls back to (got {spec.env!r})"
            )
    before, where = plan.initial(), "the defaults"
    for stage_name, after in plan.settings():
        stage = plan.stages[stage_name]
        for flag in stage.flags:
            key = f"stages.{stage_name}.flags.{flag}"
            if flag not in plan.flags:
                yield f"{key}: unknown flag (the flags are: {', '.join(plan.flags)})"
            elif after[flag] < before[flag] and not stage.lower:
                yield (
                    f"{key}: lowers {flag} from {shown(before[flag])} ({where}) to "
                    f"{shown(after[flag])}: add `lower = true` to the stage if that is meant"
                )
        before, where = after, stage_name
