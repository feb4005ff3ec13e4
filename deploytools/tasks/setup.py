"""``invoke init``: scaffold a project's deploytools files from what it already has."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from invoke.context import Context

from deploytools.tasks._support import task

if TYPE_CHECKING:
    from deploytools.ui import Ui

DRY_RUN_HELP = "print the files init would write, and write nothing"


@task(help={"dry_run": DRY_RUN_HELP})
def init(c: Context, ui: Ui, dry_run: bool = False) -> None:
    """Write tasks.py, config/deploy.toml and an env example from the project; never overwrites."""
    from deploytools import projectscan, scaffold

    root = Path.cwd()
    found = projectscan.scan(root)
    files, guesses = scaffold.plan(found)
    ui.info("guessed (check each):")
    for guess in [*found.guesses, *guesses]:
        ui.info(f"  {guess}")
    for warning in found.warnings:
        ui.warn(warning)
    if dry_run:
        for item in files:
            state = "exists, would be left alone" if (root / item.path).exists() else "would write"
            ui.info(f"--- {item.path} ({state})")
            ui.result(item.text.rstrip("\n"))
        return
    written, left = scaffold.write(root, files)
    for path in written:
        ui.success(f"wrote {path}")
    for path in left:
        ui.info(f"{path} exists: left as it is")
    ui.info(
        "next: fill in the placeholders, then invoke env.init, invoke verify, "
        "invoke deploy --dry-run"
    )
