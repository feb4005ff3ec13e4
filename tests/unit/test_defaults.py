"""Defaults that fit any project, not the example: the application at the project root, the
migrations where alembic.ini says, and the example getting its own layout by saying so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploytools.config import DatabaseSettings, EnvironmentSettings, load_settings
from deploytools.db.location import migrations_dir
from deploytools.errors import OperatorError

ROOT = Path(__file__).resolve().parents[2]


def settings(root: Path, **database: Any) -> EnvironmentSettings:
    return EnvironmentSettings(
        name="prod", env_file="e", env_example="e", runtime="process", root=root,
        database=DatabaseSettings(**database),
    )  # fmt: skip


def lay_out(root: Path, ini: str | None, env_dir: str = "alembic", at: str = "alembic.ini") -> None:
    if ini is not None:
        (root / at).parent.mkdir(parents=True, exist_ok=True)
        (root / at).write_text(ini)
    (root / env_dir).mkdir(parents=True, exist_ok=True)
    (root / env_dir / "env.py").write_text("")


def refused(conf: EnvironmentSettings) -> OperatorError:
    with pytest.raises(OperatorError) as caught:
        migrations_dir(conf)
    return caught.value


def test_nothing_defaults_to_the_example() -> None:
    conf = settings(Path("/p"))
    assert conf.app_dir == "." and conf.path(conf.app_dir) == Path("/p/.")
    assert (conf.database.alembic_dir, conf.database.alembic_ini) == (None, "alembic.ini")


@pytest.mark.parametrize(
    "location", ["%(here)s/alembic", "alembic", "./alembic/", "%(here)s/../p/alembic"]
)
def test_the_migrations_are_where_alembic_ini_at_the_root_says(
    tmp_path: Path, location: str
) -> None:
    root = tmp_path / "p"
    lay_out(root, f"[alembic]\nscript_location = {location}\nprepend_sys_path = .\n")
    assert migrations_dir(settings(root)) == (root / "alembic").resolve()


def test_an_alembic_ini_elsewhere_is_read_from_where_it_is(tmp_path: Path) -> None:
    lay_out(tmp_path, "[alembic]\nscript_location = migrations\n", "app/migrations", "app/a.ini")
    conf = settings(tmp_path, alembic_ini="app/a.ini")
    assert migrations_dir(conf) == (tmp_path / "app/migrations").resolve()


def test_a_configured_alembic_dir_wins_over_alembic_ini(tmp_path: Path) -> None:
    lay_out(tmp_path, "[alembic]\n", "app/db")  # an ini without script_location: not read
    conf = EnvironmentSettings(
        name="prod", env_file="e", env_example="e", runtime="process", root=tmp_path,
        app_dir="app", database=DatabaseSettings(alembic_dir="db"),
    )  # fmt: skip
    assert migrations_dir(conf) == tmp_path / "app/db"


@pytest.mark.parametrize(
    ("ini", "problem"),
    [
        ("[alembic]\nsqlalchemy.url = sqlite://\n", "[alembic] script_location is missing"),
        ("[alembic]\nscript_location =\n", "[alembic] script_location is missing"),
        ("[loggers]\nkeys = root\n", "[alembic] script_location is missing"),
        ("[alembic]\nscript_location = %(nowhere)s/x\n", "cannot be read as alembic reads it"),
        ("script_location = alembic\n", "cannot be read as alembic reads it"),
        ("[alembic]\nscript_location = shop:migrations\n", "a package resource"),
    ],
)
def test_an_alembic_ini_that_does_not_say_where_is_refused(
    tmp_path: Path, ini: str, problem: str
) -> None:
    lay_out(tmp_path, ini)
    error = refused(settings(tmp_path))
    assert error.problem.startswith(f"{tmp_path / 'alembic.ini'}: "), error.problem
    assert problem in error.problem and "script_location" in error.fix


@pytest.mark.parametrize("location", ["../outside", "%(here)s/..", "/usr/lib"])
def test_a_script_location_outside_the_project_is_refused(tmp_path: Path, location: str) -> None:
    root = tmp_path / "p"
    lay_out(root, f"[alembic]\nscript_location = {location}\n")
    lay_out(tmp_path, None, "outside")
    error = refused(settings(root))
    assert f"{root / 'alembic.ini'}: [alembic] script_location is " in error.problem
    assert f"outside the project {root.resolve()}" in error.problem
    assert "move the migrations into the project" in error.fix


def test_a_symlink_out_of_the_project_is_outside_it(tmp_path: Path) -> None:
    root = tmp_path / "p"
    lay_out(tmp_path, None, "elsewhere")
    root.mkdir()
    (root / "alembic").symlink_to(tmp_path / "elsewhere")
    (root / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/alembic\n")
    assert "outside the project" in refused(settings(root)).problem


def test_no_alembic_ini_and_no_alembic_dir_says_which_keys_to_set(tmp_path: Path) -> None:
    error = refused(settings(tmp_path))
    assert error.problem == f"no alembic.ini at {tmp_path / 'alembic.ini'}, and " + (
        "database.alembic_dir is not set"
    )
    assert "database.alembic_ini" in error.fix and "database.alembic_dir" in error.fix


def test_a_script_location_without_env_py_names_the_ini_key(tmp_path: Path) -> None:
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/db\n")
    (tmp_path / "db").mkdir()
    error = refused(settings(tmp_path))
    assert (
        error.problem == f"no alembic environment at {tmp_path.resolve() / 'db'} (env.py missing)"
    )
    assert "script_location" in error.fix and "alembic.ini" in error.fix


def test_the_example_says_where_its_code_migrations_and_default_environment_are() -> None:
    conf = load_settings(None, config_path=ROOT / "config/deploy.toml")
    assert conf.name == "local" and conf.path(conf.app_dir) == ROOT / "example"
    assert migrations_dir(conf) == ROOT / "example/migrations"
