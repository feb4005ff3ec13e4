"""Process releases are clean artifacts, in a project laid out like the trial's (``app_dir =
"."``: the env file, the backups and the state directory sit beside the code).

One project serves the module: a tiny HTTP service (``python -m shop``, the release id in its
/health answer), SQLite under the shared ``var/``, ``releases.keep = 2``. Each test deploys
from whatever the one before left: it asserts on the releases it makes itself.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import free_port
from tests.support.rootproject import ENV, RootSite, root_project, shop_service

pytestmark = pytest.mark.integration

KEEP = 2
TOKEN = "shop-token-7f3e9c1a5b2d4e6f8091a2b3"
SERVICE = shop_service("from shop.version import VERSION", '"version": VERSION')
MORE_CONFIG = f"""
[environments.{ENV}.releases]
keep = {KEEP}

[environments.{ENV}.services.web.probe]
url = "http://127.0.0.1:{{PORT}}/health"
min_healthy = 0
timeout = 20

[environments.{ENV}.timeouts]
stop = 5
"""


class Shop(RootSite):
    def deploy_next(self) -> str:
        """Commit the next version and deploy it; returns its tag."""
        self.version += 1
        self.project.file("shop/version.py").write_text(f"VERSION = {self.version}\n")
        self.git("commit", "-qam", f"version {self.version}")
        run = self.run("deploy", "--env", ENV)
        assert run.returncode == 0, run.output
        return str(self.releases()[-1]["tag"])


def release_files(code: Path) -> dict[str, os.stat_result]:
    """Every file and directory of a release, its shared ``var`` link not followed."""
    found = {}
    for here, dirs, files in os.walk(code):  # os.walk does not follow the var symlink
        for name in [*dirs, *files]:
            path = Path(here) / name
            found[path.relative_to(code).as_posix()] = path.lstat()
    return found


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    path = tmp_path_factory.mktemp("artifacts") / "shop"
    project = root_project(path)
    files = {
        "shop/__main__.py": SERVICE,
        "shop/version.py": "VERSION = 0\n",
        ".gitignore": "config/*.env\n.deploytools/\nbackups/\nvar/\n__pycache__/\n*.db\n",
        f"config/{ENV}.env.example": "SHOP_API_TOKEN=<token>\n"
        "DATABASE_URL=sqlite:///var/shop.sqlite3\nPORT=8000\n",
    }
    for name, text in files.items():
        project.file(name).write_text(text)
    with project.file("config/deploy.toml").open("a") as toml:
        toml.write(MORE_CONFIG)
    port = str(free_port())
    project.write_env(
        ENV, f"SHOP_API_TOKEN={TOKEN}\nDATABASE_URL=sqlite:///var/shop.sqlite3\nPORT={port}\n"
    )
    project.file("var").mkdir()
    sqlite3.connect(project.file("var/shop.sqlite3")).close()  # so that deploys back it up
    site = Shop(project, port)
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "the shop as cloned"]):
        site.git("-c", "user.name=t", "-c", "user.email=t@t", *argv)
    site.git("config", "user.name", "t")
    site.git("config", "user.email", "t@t")
    try:
        yield site
    finally:
        project.invoke("stack.down", "--env", ENV)


def test_a_release_holds_only_the_commits_tracked_files_and_does_not_grow(shop: Shop) -> None:
    tags = [shop.deploy_next() for _ in range(3)]

    assert list(shop.project.file(f"backups/{ENV}").glob("*.json")), "the deploys made backups"
    tracked = sorted(shop.git("ls-files").split())
    sizes = {}
    for tag in tags[-KEEP:]:
        code = shop.releases_dir / tag
        found = release_files(code)
        assert sorted(n for n, s in found.items() if stat.S_ISREG(s.st_mode)) == sorted(
            [*tracked, ".deploytools-release"]
        ), f"{tag} holds more than the commit's tracked files"
        for name in found:  # no env file, backup, state or earlier release inside
            assert name != f"config/{ENV}.env", name
            assert not name.startswith(("backups", ".deploytools/", "releases")), name
        secrets = [n for n, s in found.items() if stat.S_ISREG(s.st_mode)
                   and TOKEN.encode() in (code / n).read_bytes()]  # fmt: skip
        assert secrets == []
        assert stat.S_ISLNK(found["var"].st_mode)  # the shared data, linked
        assert stat.S_IMODE(code.stat().st_mode) == 0o750
        readable = [n for n, s in found.items() if not stat.S_ISLNK(s.st_mode)
                    and stat.S_IMODE(s.st_mode) & 0o007]  # fmt: skip
        assert readable == [], "nothing in a release is open to every user"
        sizes[tag] = sum(s.st_size for s in found.values() if stat.S_ISREG(s.st_mode))
    assert len(set(sizes.values())) == 1, f"release sizes grew: {sizes}"
    assert shop.serves()["release"] == tags[-1]


def test_retention_keeps_the_last_good_releases_and_a_rollback_to_one_works(shop: Shop) -> None:
    tags = [shop.deploy_next() for _ in range(KEEP + 2)]

    assert shop.stored() == sorted(tags[-KEEP:])  # the running one is the newest of them
    record = [e for e in _journal(shop) if e["kind"] == "step.done" and e["step"] == "record"][-1]
    assert tags[-KEEP - 1] in record["pruned"] and sorted(record["kept"]) == sorted(tags[-KEEP:])

    plan = shop.run("deploy", "--env", ENV, "--dry-run")
    assert plan.returncode == 0, plan.output
    assert f"release retention: remove release {tags[-KEEP]}" in plan.output
    assert shop.stored() == sorted(tags[-KEEP:])  # the plan removed nothing

    target = tags[-KEEP]
    back = shop.run("rollback", "--env", ENV, "--tag", target)
    assert back.returncode == 0, back.output
    body = shop.serves()
    assert (body["release"], body["version"]) == (target, shop.version - 1)
    assert shop.stored() == sorted(tags[-KEEP:])  # both are among the last good releases


def _journal(shop: Shop) -> list[dict[str, Any]]:
    text = shop.project.file(f".deploytools/{ENV}/journal.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]
