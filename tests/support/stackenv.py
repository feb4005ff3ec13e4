"""Environment settings for stack and celery tests, built in memory (no deploy.toml needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deploytools.config import EnvironmentSettings, deep_merge

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "example"


def make_settings(root: Path, **overrides: Any) -> EnvironmentSettings:
    """A ``process`` environment named ``t`` rooted at ``root``; ``overrides`` merge on top."""
    base: dict[str, Any] = {
        "name": "t",
        "env_file": str(root / "t.env"),
        "env_example": str(root / "t.env.example"),
        "runtime": "process",
        "app_dir": str(EXAMPLE_DIR),
        "state_dir": str(root / "state"),
        "root": root,
        "celery": {"required_tasks": ["exampleapp.add"]},
    }
    return EnvironmentSettings.model_validate(deep_merge(base, overrides))
