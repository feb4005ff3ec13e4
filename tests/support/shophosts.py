"""The trial-shaped ``shop`` deployed over simulated hosts (process runtime), for the tests and
the benchmark that deploy it over several sshd hosts.

The project: ``shop/`` and ``alembic/`` at the root (tests/support/rootproject.py), a service
whose /health says its release and version, and which exits at once on the host whose port
``shop/failing.py`` names (a release that fails on one host). Each environment lists its hosts,
the first one primary; each host's service listens on a port of its own (the host's ``env``:
the simulated hosts share this machine's loopback).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.cli import Run, TempProject
from tests.support.deployproject import DEPLOY_TIMEOUT, health, toml_text
from tests.support.rootproject import ENV_PY, REVISION, shop_service
from tests.support.sshd import SshTarget

FAILING = (
    "import os, sys\nfrom shop.failing import PORT\n"
    "if os.environ['PORT'] == PORT:\n    sys.exit('this release fails on this host')\n"
)


# /health also says the process and whether user-1 gets the flag-dependent checkout: what
# `deploytools.flagclient` reads from the host's flag state (DEPLOYTOOLS_FLAGS_FILE).
IMPORTS = "from shop.version import VERSION\nfrom deploytools.flagclient import is_enabled"
FIELDS = '"version": VERSION, "pid": os.getpid(), "checkout": is_enabled("new_checkout", "user-1")'
FLAGS = """\
[flags.new_checkout]
description = "the one-page checkout"
owner = "shop-team"
expires = 2099-12-31
live = ["web"]

[stages.dark]
flags = { new_checkout = "off" }

[stages.half]
flags = { new_checkout = 50 }
"""


def shop_project(path: Path, env_files: Mapping[str, str]) -> TempProject:
    """The project in ``path`` (made), a git repository with nothing committed yet, and the
    env file of each environment in ``env_files`` (environment -> the file's text)."""
    path.mkdir(parents=True)
    project = TempProject(path, example=False)
    files = {
        "shop/__init__.py": "",
        "shop/__main__.py": FAILING + shop_service(IMPORTS, FIELDS),
        "config/flags.toml": FLAGS,
        "alembic.ini": "[alembic]\nscript_location = %(here)s/alembic\n",
        "alembic/env.py": ENV_PY,
        "alembic/versions/a1_create_items.py": REVISION,
        ".gitignore": "config/*.env\n__pycache__/\n",
    }  # fmt: skip
    for env in env_files:
        files[f"config/{env}.env.example"] = "SHOP_API_TOKEN=<token>\nDATABASE_URL=<url>\n"
    for name, text in files.items():
        project.file(name).parent.mkdir(parents=True, exist_ok=True)
        project.file(name).write_text(text)
    for env, text in env_files.items():
        project.write_env(env, text)
    for argv in (
        ["init", "-q", "-b", "main"],
        ["config", "user.email", "t@example.invalid"],
        ["config", "user.name", "T"],
        ["config", "commit.gpgsign", "false"],
    ):
        subprocess.run(["git", *argv], cwd=path, check=True, capture_output=True)  # fmt: skip
    return project


def environment(
    env: str,
    targets: Sequence[SshTarget],
    ports: Mapping[str, str],
    rollout: Mapping[str, Any],
) -> dict[str, Any]:
    """Environment ``env`` of deploy.toml: ``targets`` (the first primary), the service on
    each host's port in ``ports`` (host name -> port; "1" for a host not listed)."""
    hosts = [
        {
            "name": t.name, "address": t.address, "port": t.port, "user": t.user,
            "key_file": t.key_file, "known_hosts": t.known_hosts, "root": t.root,
            "primary": i == 0, "env": {"PORT": ports.get(t.name, "1")},
        }
        for i, t in enumerate(targets)
    ]  # fmt: skip
    return {
        "env_file": f"config/{env}.env",
        "env_example": f"config/{env}.env.example",
        "runtime": "process",
        "python": sys.executable,  # the app's interpreter on every host (alembic too)
        "hosts": hosts,
        "rollout": dict(rollout),
        "timeouts": {"stop": 5},
        "services": {
            "web": {
                "command": ["{python}", "-m", "shop"],
                "probe": {"url": "http://127.0.0.1:{PORT}/health", "timeout": 15},
            }
        },
    }


def configure(project: TempProject, environments: Mapping[str, Mapping[str, Any]]) -> None:
    """deploy.toml with these environments (``environment``), the first one the default."""
    config = {
        "project": {"name": "shop", "default_environment": next(iter(environments))},
        "environments": dict(environments),
    }
    project.file("config/deploy.toml").write_text(toml_text(config))


def commit(project: TempProject, version: int, message: str, *, failing_port: str = "") -> None:
    """A new release, ``version`` in its /health; its service exits on ``failing_port``."""
    project.file("shop/version.py").write_text(f"VERSION = {version}\n")
    project.file("shop/failing.py").write_text(f"PORT = {failing_port!r}\n")
    for argv in (["add", "-A"], ["commit", "-q", "-m", message]):
        subprocess.run(["git", *argv], cwd=project.path, check=True, capture_output=True)


def deploy(project: TempProject, env: str, *args: str) -> Run:
    return project.invoke("deploy", "--env", env, *args, timeout=DEPLOY_TIMEOUT)


def serving(ports: Mapping[str, str]) -> dict[str, str | None]:
    """host -> the release its service on its port answers with (None: nothing answers)."""
    answers = {name: health(port) for name, port in ports.items()}
    return {name: body.get("release") if code == 200 else None
            for name, (code, body) in answers.items()}  # fmt: skip


def journal(primary: SshTarget, env: str) -> list[dict[str, Any]]:
    """The site's journal: the primary's (a simulated host's root is on this machine)."""
    text = (Path(primary.root) / f".deploytools/{env}/journal.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]
