"""A project laid out as real ones are (code and alembic.ini at the root, no env rules) works
with deploytools' defaults, and nothing implies the example's layout or its environment."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import TempProject
from tests.support.rootproject import ENV, root_project


def test_the_migrations_are_found_from_alembic_ini_at_the_root(tmp_path: Path) -> None:
    project = root_project(tmp_path)
    project.write_env(ENV, "DATABASE_URL=sqlite:///var/shop.sqlite3\n")
    history = project.invoke("db.history", "--env", ENV, "--json")
    assert history.returncode == 0, history.output
    [revision] = json.loads(history.stdout)
    assert (revision["id"], revision["path"]) == (
        "a1",
        str(tmp_path / "alembic/versions/a1_create_items.py"),
    )
    current = project.invoke("db.current", "--env", ENV, "--json")
    assert current.returncode == 0, current.output
    assert json.loads(current.stdout) == {"revision": None, "pending": ["a1"]}
    assert not (tmp_path / "var").exists()  # app_dir "." and nothing made by asking


def test_without_env_and_without_a_default_the_task_lists_the_environments(
    tmp_path: Path,
) -> None:
    project = root_project(tmp_path)
    before = project.snapshot()
    run = project.invoke("env.validate")
    assert run.returncode == 2, run.output
    assert run.stderr.startswith("error: no environment given, and "), run.stderr
    assert "names no default (environments: prod, staging)" in run.stderr
    assert "fix: pass --env NAME, or set default_environment = NAME under [project]" in run.stderr
    assert "Traceback" not in run.output and project.snapshot() == before


def test_the_example_names_its_default_environment(tmp_path: Path) -> None:
    project = TempProject(tmp_path)
    project.write_env("local", "PORT=8000\n")
    run = project.invoke("env.validate", "--json")
    assert json.loads(run.stdout)["env"] == "local", run.output
