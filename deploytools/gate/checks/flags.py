"""flags: the flag plan (config/flags.toml) is consistent, and carries no debt.

Debt fails the gate: a flag past its ``expires``; a flag the stages take to 100 % and keep
there, from a stage whose ``not_before`` is more than ``[debt] full_rollout_days`` (default 30)
ago (a stage without a date cannot tell since when: not counted); a flag that no source file
of the app names, by its name or its ``FEATURE_`` variable (a plain text search, as flag
scanners do: a comment naming it counts).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

from deploytools.flagclient import env_name
from deploytools.flags import DEFAULT_PLAN
from deploytools.flags.plan import FlagPlan, load_plan
from deploytools.gate.project import Project
from deploytools.gate.registry import Item, register

SOURCE_SUFFIXES = frozenset(
    ".py .pyi .js .jsx .mjs .ts .tsx .vue .svelte .html .htm .jinja .jinja2 .j2 .txt .sh "
    ".go .rb .java .kt .rs .php .cs .yml .yaml .json .cfg .ini".split()
)
SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "venv", "site-packages", "wheelhouse"})
TARGET = "flags"


@register("flags", per_environment=False)
def check_flags(project: Project, env: str | None) -> list[Item]:
    """The flag plan is consistent; no flag expired, fully rolled out too long, or unused."""
    path = project.root / DEFAULT_PLAN
    shown = project.shown(path)
    if not path.is_file():
        return [Item(TARGET, "pass", f"no {DEFAULT_PLAN}: the project has no flags", shown)]
    plan = load_plan(path)  # an inconsistent plan: the runner fails the check with its words
    items = [*_expired(plan, project.today, shown), *_rolled_out(plan, project.today, shown)]
    items += _unreferenced(plan, _sources(project), shown)
    if not items:
        items.append(Item(TARGET, "pass", f"{len(plan.flags)} flag(s), no debt", shown))
    return items


def _expired(plan: FlagPlan, today: date, shown: str) -> Iterator[Item]:
    for name, flag in plan.flags.items():
        if flag.expires < today:
            yield Item(
                TARGET,
                "fail",
                f"flag {name} expired on {flag.expires} (owner {flag.owner}): remove it from the "
                "code and the plan, or move expires with a reason",
                f"{shown} (flags.{name}.expires)",
            )


def _rolled_out(plan: FlagPlan, today: date, shown: str) -> Iterator[Item]:
    """Flags on for everyone from a dated stage to the last one, for too long."""
    limit = timedelta(days=plan.debt.full_rollout_days)
    settings = list(plan.settings())
    for name in plan.flags:
        since: tuple[str, date] | None = None
        for stage, setting in settings:
            if setting.get(name) != 100:
                since = None
            elif since is None and (when := plan.stages[stage].not_before) is not None:
                since = (stage, when.date() if isinstance(when, datetime) else when)
        if since is not None and today - since[1] > limit:
            yield Item(
                TARGET,
                "fail",
                f"flag {name} is on for everyone since stage {since[0]} ({since[1]}), more than "
                f"{plan.debt.full_rollout_days} days: remove the flag from the code and the plan",
                f"{shown} (stages.{since[0]})",
            )


def _unreferenced(plan: FlagPlan, sources: list[Path], shown: str) -> Iterator[Item]:
    wanted = {name: (name, env_name(name)) for name in plan.flags}
    for path in sources:
        if not wanted:
            return
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        wanted = {n: words for n, words in wanted.items() if not any(w in text for w in words)}
    for name, (_, variable) in wanted.items():
        yield Item(
            TARGET,
            "fail",
            f"flag {name}: no source file of the app names it ({name} or {variable}): dead "
            "flag? remove it from the plan",
            f"{shown} (flags.{name})",
        )


def _sources(project: Project) -> list[Path]:
    """The app's source files: under each environment's app_dir (the project root if none)."""
    dirs = {s.path(s.app_dir).resolve() for s in project.loaded()} or {project.root.resolve()}
    found: list[Path] = []
    for top in sorted(dirs):
        for here, subdirs, files in os.walk(top):
            subdirs[:] = [d for d in subdirs if not d.startswith(".") and d not in SKIPPED_DIRS]
            found += [Path(here, f) for f in files if Path(f).suffix in SOURCE_SUFFIXES]
    return found
