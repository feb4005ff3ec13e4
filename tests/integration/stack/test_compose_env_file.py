"""The env file compose reads, asked of the installed compose (``docker compose config``).

Compose interpolates ``$`` in env files and decodes escapes its own way; python-dotenv, which
deploytools and the host tools read the file with, does neither. Containers must get exactly
python-dotenv's values: the compose runtime hands compose a copy written for it. And
``env.validate`` must name exactly the keys that compose, given the file as it is, changes.
No container is started: ``config`` shows what every container of the service would get.
"""

from __future__ import annotations

import json
import os
import string
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from deploytools.env import file as envfile
from deploytools.env.compose import compose_findings, compose_reading
from deploytools.hosts.local import LocalHost
from deploytools.runtime.compose import ComposeRuntime
from tests.support.stackenv import make_settings

pytestmark = pytest.mark.integration

# As operators write them by hand: every quoting, and what compose does to each.
HAND_WRITTEN = r"""UNQUOTED_DOLLAR=abc$def
DOUBLE_DOLLAR=a$$b
BRACED=x${HOME}y
PASSWORD=kW2m$Tq9vLz4Xc8Rb1Hn6
SINGLE='q$w'
DOUBLE_QUOTED="say \"hi\" $$ \\ end"
ESCAPED_DOLLAR="\$HOME"
SINGLE_BACKSLASH='c:\\dir\'s'
DOUBLE_APOSTROPHE="it\'s"
ENDS_BACKSLASH="ends\\"
HASH_QUOTED='has # hash'
HASH_UNQUOTED=has # hash
HASH_IN_WORD=a#b
APOSTROPHE="it's"
SPACES='  two  spaces  '
UNQUOTED_SPACES=  trimmed   # and a comment
NEWLINE="one\ntwo"
TAB="a\tb"
UNKNOWN_ESCAPE="a\qb"
UNICODE='ünï€'
DOLLAR_DIGIT=a$1b
EMPTY=
export EXPORTED=x$y
"""
# As deploytools writes them (env.init, env.set): values with every awkward character.
WRITTEN_BY_US = {
    "PRINTABLE": string.printable.strip("\n\r\x0b\x0c"),
    "QUOTES_AND_DOLLARS": "'\"$${X}$'\\",
    "ENDS_IN_QUOTE": 'x"',
    "STARTS_WITH_QUOTES": "\"'x",
    "ONLY_BACKSLASH": "\\",
    "MULTI_LINE": "line 1\nline 2 $HOME\r\n",
}


def compose_environment(files: list[Path], env_file: str, service: str = "s") -> dict[str, str]:
    """What compose gives the service's containers, ``$`` as itself (``config`` doubles it)."""
    argv = ["docker", "compose", "-p", f"dtenv-{uuid.uuid4().hex[:8]}"]
    for file in files:
        argv += ["-f", str(file)]
    done = subprocess.run(
        [*argv, "config", "--format", "json"],
        env={**os.environ, "ENV_FILE": env_file},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    config: dict[str, Any] = json.loads(done.stdout)
    environment = config["services"][service].get("environment") or {}
    return {k: (v or "").replace("$$", "$") for k, v in environment.items()}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    compose = tmp_path / "compose.yml"
    compose.write_text(
        "services:\n  s:\n    image: local/python-base:bookworm\n    env_file: ${ENV_FILE}\n"
    )
    return compose


def test_containers_get_exactly_the_values_the_host_tools_read(
    docker_engine: Any, tmp_path: Path, project: Path
) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text(HAND_WRITTEN + "BARE\n")
    envfile.update(LocalHost(), str(env_file), WRITTEN_BY_US)
    settings = make_settings(
        tmp_path,
        runtime="compose",
        env_file=str(env_file),
        compose={"project_name": "dtenv", "directory": str(tmp_path), "files": [str(project)]},
    )
    runtime = ComposeRuntime(settings, LocalHost())
    runtime.check()

    values = envfile.load_values(env_file)
    assert values["PASSWORD"] == "kW2m$Tq9vLz4Xc8Rb1Hn6" and values["BARE"] == ""
    assert compose_environment([project], runtime.env_file) == values
    copy = Path(runtime.env_file)
    assert copy.parent == tmp_path / "state" / "t"
    assert copy.stat().st_mode & 0o777 == 0o600
    assert runtime.project.env_file == str(copy)


def test_env_validate_names_exactly_the_keys_compose_would_change(
    docker_engine: Any, tmp_path: Path, project: Path
) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text(HAND_WRITTEN)
    doc = envfile.parse(env_file.read_bytes())
    values = envfile.load_values(env_file)
    assert doc.values() == values  # every line well-formed: python-dotenv's values

    composed = compose_environment([project], str(env_file))

    changed = {key for key, value in values.items() if composed.get(key) != value}
    assert {f.key for f in compose_findings(doc)} == changed
    assert {"UNQUOTED_DOLLAR", "DOUBLE_DOLLAR", "BRACED", "PASSWORD"} <= changed
    for line in doc.lines:
        assert line.key is not None
        reading = compose_reading(line)
        if not reading.interpolates:
            assert composed[line.key] == reading.text, line.key
