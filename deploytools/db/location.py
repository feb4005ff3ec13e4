"""Where the alembic environment (``env.py`` and the revisions) of a project is.

``database.alembic_dir`` (relative to ``app_dir``) when the config names it; otherwise the
``script_location`` of the project's ``alembic.ini`` (``database.alembic_ini``, at the project
root by default), read as alembic reads it: ``%(here)s`` is the directory holding the file, and
a relative path is taken from there too (where ``alembic`` is run with that file). The
location must be inside the project: a release carries the project's files and nothing else.
"""

from __future__ import annotations

import configparser
from pathlib import Path, PurePath

from deploytools.config import EnvironmentSettings, read_text
from deploytools.errors import OperatorError

SECTION = "alembic"
KEY = "script_location"
EXAMPLE = f"{KEY} = %(here)s/alembic"
FIX = f"add under [{SECTION}] the directory holding env.py, e.g. {EXAMPLE}"


def migrations_dir(settings: EnvironmentSettings) -> Path:
    """The directory holding ``env.py``; an operator error naming the file and key otherwise."""
    conf = settings.database
    if conf.alembic_dir is not None:
        location = settings.path(settings.app_dir) / conf.alembic_dir
        fix = "set database.alembic_dir (relative to app_dir) in config/deploy.toml"
    else:
        ini = settings.path(conf.alembic_ini)
        location = script_location(ini, settings.root)
        fix = f"set [{SECTION}] {KEY} in {ini} to the directory holding env.py"
    if not (location / "env.py").is_file():
        raise OperatorError(f"no alembic environment at {location} (env.py missing)", fix)
    return location


def script_location(ini: Path, root: Path) -> Path:
    """``[alembic] script_location`` of ``ini`` as a path inside ``root``."""
    if not ini.is_file():
        raise OperatorError(
            f"no alembic.ini at {ini}, and database.alembic_dir is not set",
            "set database.alembic_ini in config/deploy.toml to the project's alembic.ini, or "
            "database.alembic_dir to the directory holding env.py (relative to app_dir)",
        )
    where = f"{ini}: [{SECTION}] {KEY}"
    parser = configparser.ConfigParser({"here": ini.parent.as_posix()})
    try:
        parser.read_string(read_text(ini), source=str(ini))
        raw = parser.get(SECTION, KEY).strip() if parser.has_option(SECTION, KEY) else ""
    except configparser.Error as exc:
        reason = " ".join(str(exc).split())
        raise OperatorError(f"{ini}: cannot be read as alembic reads it: {reason}", FIX) from None
    if not raw:
        raise OperatorError(f"{where} is missing: alembic cannot find env.py without it", FIX)
    if ":" in raw and not PurePath(raw).is_absolute():
        raise OperatorError(
            f"{where} is {raw!r}, a package resource: deploytools never imports the app",
            f"give {KEY} as a path, e.g. {EXAMPLE}",
        )
    location = (ini.parent / raw).resolve()
    project = root.resolve()
    if not location.is_relative_to(project):
        raise OperatorError(
            f"{where} is {location}, outside the project {project}: a release would not "
            "carry those migrations",
            f"move the migrations into the project and point {KEY} at them ({EXAMPLE})",
        )
    return location


def release_ini(settings: EnvironmentSettings) -> str:
    """``database.alembic_ini`` as a path inside a release (a copy of ``app_dir``, or the
    image's working directory): the ``-c`` of the alembic the release runs."""
    app_dir = settings.path(settings.app_dir).resolve()
    ini = settings.path(settings.database.alembic_ini).resolve()
    if not ini.is_file():
        raise OperatorError(
            f"no alembic.ini at {ini}: migrations run as `alembic -c alembic.ini` in the release",
            "set database.alembic_ini in config/deploy.toml to the project's alembic.ini "
            f"(its [{SECTION}] {KEY} names the directory holding env.py)",
        )
    if not ini.is_relative_to(app_dir):
        raise OperatorError(
            f"database.alembic_ini {ini} is outside app_dir {app_dir}: a release carries app_dir",
            "move alembic.ini into app_dir, or set app_dir to the directory that holds it",
        )
    return ini.relative_to(app_dir).as_posix()
