"""A remote compose deploy builds once, on the primary, then ships to the other hosts: the
stages' order, and what ``ShipImages`` and ``PlaceComposeFiles`` do on the ``Host`` seam."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploytools.errors import DeployFailure
from deploytools.pipeline.engine import Stage, Together
from deploytools.pipelines.deploy import deploy_steps
from deploytools.pipelines.stages import made
from deploytools.site import Site
from deploytools.site.lock import DeployLock
from deploytools.steps.base import RunContext
from deploytools.steps.hosts import OnHosts
from deploytools.steps.rollback import PrepareRelease
from deploytools.steps.ship import PlaceComposeFiles, ShipImages
from deploytools.testing import MemoryHost, settings_for
from deploytools.ui import Ui

IMAGE = "shop:release-t-20260101T000000Z-abc1234"
HOSTS = [
    {"name": "web-1", "address": "10.0.0.1", "primary": True, "root": "/srv/one"},
    {"name": "web-2", "address": "10.0.0.2", "root": "/srv/two", "env": {"PORT": "8002"}},
]
COMPOSE = {"project_name": "shop", "directory": "deploy", "files": ["compose.yml", "/etc/o.yml"]}


def names(steps: list[Stage]) -> list[str]:
    found = []
    for stage in steps:
        inner = stage.steps if isinstance(stage, Together | OnHosts) else (stage,)
        found += [f"{stage.name}: {s.name}" if isinstance(stage, OnHosts) else s.name
                  for s in inner]  # fmt: skip
    return found


def test_a_remote_compose_deploy_builds_on_the_primary_then_ships_to_the_others() -> None:
    lock = DeployLock(MemoryHost(), "/s", 60.0, env="t")

    steps = deploy_steps(lock, "deploy", 0.0, False, remote=True, ship_images=True)

    assert names(steps) == [
        "validate env", "check hosts: check host", "lock", "snapshot", "build",
        "ship images: ship images", "ship images: place compose files", "lint migrations",
        "backup", "migrate", "keep flags", "roll out: start", "roll out: wait healthy",
        "retire: retire",
        "verify celery",
        "record",
    ]  # fmt: skip
    [ship] = [s for s in steps if s.name == "ship images"]
    assert isinstance(ship, OnHosts) and not ship.rolling and ship.others


def test_the_process_runtime_still_builds_on_every_host_at_once() -> None:
    lock = DeployLock(MemoryHost(), "/s", 60.0, env="t")

    steps = deploy_steps(lock, "deploy", 0.0, False, remote=True)

    assert "build: build" in names(steps) and "ship images: ship images" not in names(steps)


def test_wheels_are_made_for_every_host_before_the_build_ships_to_any() -> None:
    lock = DeployLock(MemoryHost(), "/s", 60.0, env="t")

    steps = names(deploy_steps(lock, "deploy", 0.0, False, remote=True, wheels=True))

    assert steps[steps.index("snapshot") + 1 : steps.index("lint migrations")] == [
        "make wheels: make wheels", "build: build",
    ]  # fmt: skip
    [stage] = [s for s in deploy_steps(lock, "d", 0.0, False, remote=True, wheels=True)
               if s.name == "make wheels"]  # fmt: skip
    assert isinstance(stage, OnHosts) and not stage.rolling and stage.with_primary
    assert "make wheels: make wheels" not in names(deploy_steps(lock, "d", 0.0, False, remote=True))


def test_every_hosts_runtime_shares_the_sites_release_archives(tmp_path: Path) -> None:
    """A process release's archive and wheels are made once per run, not once per host."""
    (tmp_path / "t.env").write_text("PORT=8001\n")
    settings = settings_for(tmp_path, runtime="process", hosts=HOSTS)
    hosts = {"web-1": MemoryHost("web-1"), "web-2": MemoryHost("web-2")}
    site = Site(settings, Ui(), control=MemoryHost("control"), connect=lambda h: hosts[h.name])
    ctx = RunContext(settings, hosts["web-1"], site.ui, site.journal, {}, site)
    runtimes = [ctx.runtime, ctx.on_host("web-2").runtime]
    assert [getattr(r, "archives", None) for r in runtimes] == [site.archives] * 2


def site_ctx(tmp_path: Path, primary: MemoryHost, other: MemoryHost) -> RunContext:
    if not (tmp_path / "t.env").exists():
        (tmp_path / "t.env").write_text("PORT=8001\n")
    settings = settings_for(tmp_path, runtime="compose", compose=COMPOSE, hosts=HOSTS)
    hosts = {"web-1": primary, "web-2": other}
    site = Site(settings, Ui(), control=MemoryHost("control"), connect=lambda h: hosts[h.name])
    ctx = RunContext(settings, primary, site.ui, site.journal, {}, site)
    ctx.release = IMAGE.split(":")[1]
    ctx.facts.images = {IMAGE: "sha256:new"}
    return ctx


def test_ship_images_streams_the_images_the_host_lacks_from_the_primary(tmp_path: Path) -> None:
    primary = MemoryHost("web-1", lambda argv: (0, "sha256:new\n" if "inspect" in argv else ""))
    loaded: list[bool] = []

    def engine(argv: list[str]) -> tuple[int, str]:
        if argv[:3] == ["docker", "image", "load"]:
            loaded.append(True)
            return 0, ""
        return (0, "sha256:new\n") if loaded else (1, "No such image")

    other = MemoryHost("web-2", engine)
    ctx = site_ctx(tmp_path, primary, other)

    done = ShipImages().run(ctx.on_host("web-2"))

    assert ["docker", "image", "save", IMAGE] in primary.commands
    assert [argv for argv, _ in other.fed] == [["docker", "image", "load", "--quiet"]]
    assert other.commands[0] == ["docker", "image", "inspect", "--format", "{{.Id}}", IMAGE]
    assert done["sent"] == [IMAGE] and done["present"] == []


def test_ship_images_without_a_build_says_so(tmp_path: Path) -> None:
    ctx = site_ctx(tmp_path, MemoryHost("web-1"), MemoryHost("web-2"))
    ctx.facts.images = {}

    with pytest.raises(DeployFailure, match="no image of release"):
        ShipImages().run(ctx.on_host("web-2"))


def test_compose_files_and_the_env_file_reach_the_other_host(tmp_path: Path) -> None:
    primary, other = MemoryHost("web-1"), MemoryHost("web-2")
    primary.files["/srv/one/deploy/compose.yml"] = b"services: {}\n"
    (tmp_path / "t.env").write_text("PORT=8001\nSECRET_KEY='s3cr3t value'\n")
    ctx = site_ctx(tmp_path, primary, other)

    done = PlaceComposeFiles().run(ctx.on_host("web-2"))

    assert other.files["/srv/two/deploy/compose.yml"] == b"services: {}\n"
    assert "/etc/o.yml" not in other.files  # outside the project: the host's own
    path = str(tmp_path / "t.env")  # settings_for names it absolutely: the same path there
    assert other.files[path] == b"PORT=8002\nSECRET_KEY='s3cr3t value'\n"
    assert other.modes[path] == 0o600
    assert not [c for c in other.commands if any("s3cr3t" in part for part in c)]
    assert done["compose_files"] == ["deploy/compose.yml"]
    assert "/srv/two/deploy" in other.dirs  # compose's --project-directory, its commands' cwd


def test_with_no_host_but_the_primary_there_is_nothing_to_ship(tmp_path: Path) -> None:
    ctx = site_ctx(tmp_path, MemoryHost("web-1"), MemoryHost("web-2"))
    ctx.site.only = ["web-1"]
    stage = OnHosts("ship images", [ShipImages()], rolling=False, others=True)

    assert stage.plan(ctx) == ["no host but the primary: nothing to do"]
    assert stage.run(ctx) == {"hosts": "no host but the primary: nothing to do"}


def test_a_remote_compose_rollback_prepares_on_the_primary_then_ships() -> None:
    stages = made(PrepareRelease(), remote=True, ship_images=True)

    assert names(stages) == [
        "prepare release", "ship images: ship images", "ship images: place compose files",
    ]  # fmt: skip
    assert names(made(PrepareRelease(), remote=True, ship_images=False)) == [
        "prepare release: prepare release"
    ]
