"""Each process release runs on its own virtualenv (``releases.venv``), made from its
requirements file by uv, or by ``python -m venv`` + pip when uv is not on PATH.

The project (tests/support/venvshop.py) is laid out like the trial's; its service is ``{python}
-m shop`` (no ``python`` configured: the release's ``.venv``) and answers with the version of
``shopdep``; its migrations run in the release's virtualenv too. Each test makes its own.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.blackhole import black_hole
from tests.support.rootproject import ENV
from tests.support.venvshop import TOKEN, Shop, identity, made_by, make_shop

pytestmark = pytest.mark.integration

INSTALLERS = ["uv", "pip"]
Make = Callable[..., Shop]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    """``make(installer, keep=5, venv_timeout=600)``: a shop, its services stopped after."""
    made: list[Shop] = []

    def one(installer: str, keep: int = 5, venv_timeout: float = 600) -> Shop:
        made.append(make_shop(tmp_path / f"shop{len(made)}", installer, keep, venv_timeout))
        return made[-1]

    try:
        yield one
    finally:
        for site in made:
            site.run("stack.down", "--env", ENV)


@pytest.fixture(params=INSTALLERS)
def shop(request: pytest.FixtureRequest, make: Make) -> Shop:
    return make(request.param)


def serves_on(shop: Shop, release: str, shopdep: int) -> Path:
    """Asserts that ``release`` answers with ``shopdep``'s version; returns its sys.prefix."""
    body = shop.serves()
    assert (body["release"], body["shopdep"], body["dist"]) == (release, shopdep, str(shopdep))
    return Path(body["prefix"]).resolve()


def test_each_release_runs_on_its_packages_and_a_rollback_reuses_its_virtualenv(
    shop: Shop, request: pytest.FixtureRequest
) -> None:
    installer = request.node.callspec.params["shop"]
    first = shop.deploy("shopdep==1")
    venv = shop.venv_of(first)
    assert serves_on(shop, first, 1) == venv  # the service runs on the release's own
    migrated_with = shop.project.file("var/migrated-with").read_text()
    assert Path(migrated_with).resolve() == venv  # and so does its migration
    assert made_by(venv) == installer
    before = identity(venv)

    again = shop.deploy("shopdep==1")  # other code, the same requirements
    assert shop.venv_of(again) == venv and identity(venv) == before  # reused, not made again
    assert shop.venvs() == [venv.name]

    second = shop.deploy("shopdep==2")
    assert serves_on(shop, second, 2) == shop.venv_of(second) != venv
    assert sorted(shop.venvs()) == sorted([venv.name, shop.venv_of(second).name])

    back = shop.run("rollback", "--env", ENV, "--tag", first)
    assert back.returncode == 0, back.output
    assert serves_on(shop, first, 1) == venv
    assert identity(venv) == before  # old code on its old packages, nothing rebuilt
    assert sorted(shop.venvs()) == sorted([venv.name, shop.venv_of(second).name])


def test_a_requirement_that_cannot_be_installed_fails_the_build_and_keeps_the_old_release(
    shop: Shop, request: pytest.FixtureRequest
) -> None:
    installer = request.node.callspec.params["shop"]
    first = shop.deploy("shopdep==1")
    venvs = shop.venvs()

    shop.commit("shopdep==3")
    run = shop.run("deploy", "--env", ENV)

    assert run.returncode == 1, run.output
    said = {"uv": "unsatisfiable", "pip": "No matching distribution found for shopdep==3"}
    assert "cannot make the virtualenv of release" in run.output
    assert said[installer] in run.output, run.output  # the installer's own last lines
    assert "build" in shop.releases()[-1]["failed_step"]
    assert TOKEN not in run.output
    assert serves_on(shop, first, 1) == shop.venv_of(first)
    assert shop.venvs() == venvs  # the half-made virtualenv is gone


def test_retention_removes_a_virtualenv_only_when_no_kept_release_uses_it(make: Make) -> None:
    shop = make("uv", keep=2)  # the installer plays no part in retention
    one = shop.deploy("shopdep==1")
    two = shop.deploy("shopdep==2")
    venv_one, venv_two = shop.venv_of(one), shop.venv_of(two)
    three = shop.deploy("shopdep==1", extra="# another file, another virtualenv\n")
    venv_three = shop.venv_of(three)
    assert venv_three != venv_one

    assert shop.stored() == sorted([two, three])
    assert shop.venvs() == sorted([venv_two.name, venv_three.name])  # one's went with it
    before = identity(venv_two)

    four = shop.deploy("shopdep==2")  # two's requirements again: two is pruned, its venv kept
    assert shop.stored() == sorted([three, four])
    assert shop.venv_of(four) == venv_two and identity(venv_two) == before
    assert shop.venvs() == sorted([venv_two.name, venv_three.name])
    assert shop.serves()["shopdep"] == 2


def test_a_release_without_the_requirements_file_is_refused_naming_the_key(make: Make) -> None:
    shop = make("uv")
    shop.commit("shopdep==1")
    shop.git("rm", "-q", "requirements.txt")
    shop.git("commit", "-qm", "no requirements")

    run = shop.run("deploy", "--env", ENV)

    assert run.returncode == 2, run.output
    assert "has no file requirements.txt" in run.output
    assert f"environments.{ENV}.releases.venv" in run.output
    assert not shop.venvs_dir.exists()
    releases = shop.project.file(f".deploytools/{ENV}/releases")
    assert not releases.exists() or not any(releases.iterdir())


def hung_requirement(shop: Shop, port: int) -> None:
    """A commit whose install waits forever: its only package source never answers."""
    shop.version += 1
    shop.project.file("requirements.txt").write_text(
        f"--no-index\n--find-links http://127.0.0.1:{port}/\nshopdep==1\n"
    )
    shop.git("add", "-A")
    shop.git("commit", "-qm", "a package source that hangs")


def no_venv_left(shop: Shop) -> None:
    """No virtualenv, half-made or whole, and no release that a start could use."""
    assert not shop.venvs_dir.exists() or shop.venvs() == []
    releases = shop.project.file(f".deploytools/{ENV}/releases")
    assert not list(releases.glob("*/.deploytools-release"))


def test_an_install_that_hangs_is_stopped_by_the_venv_timeout(make: Make) -> None:
    shop = make("pip", venv_timeout=3)
    with black_hole() as hole:
        hung_requirement(shop, hole.port)
        started = time.monotonic()
        run = shop.run("deploy", "--env", ENV)
        took = time.monotonic() - started

    assert run.returncode == 1, run.output
    assert "timed out" in run.output and "raise timeouts.venv" in run.output
    assert took < 60, "pip's own retries (5 x 15 s) were not waited out"
    no_venv_left(shop)


def test_a_signal_during_the_install_stops_it_and_leaves_no_half_virtualenv(make: Make) -> None:
    shop = make("uv")
    with black_hole() as hole:
        hung_requirement(shop, hole.port)
        proc = subprocess.Popen(
            [sys.executable, "-m", "invoke", "deploy", "--env", ENV],
            cwd=shop.project.path,
            env=shop.project.environ({"PATH": shop.path}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while not list(shop.project.path.glob(f".deploytools/{ENV}/venvs/*/pyvenv.cfg")):
                assert proc.poll() is None and time.monotonic() < deadline, "no install began"
                time.sleep(0.05)
            time.sleep(0.5)  # uv pip install is waiting on the package source now
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    assert proc.returncode == 130, out + err
    assert "interrupted at build" in err and "Traceback" not in err
    no_venv_left(shop)
    assert running_with(str(shop.venvs_dir)) == [], "the installer outlived the deploy"


def running_with(text: str) -> list[str]:
    """Command lines of this machine's processes that mention ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode(errors="replace").replace("\0", " ")
        except OSError:  # gone meanwhile
            continue
        if text in argv:
            found.append(argv)
    return found


def test_the_plan_says_how_the_virtualenv_would_be_made_and_makes_none(make: Make) -> None:
    shop = make("uv")
    shop.commit("shopdep==1")

    plan = shop.run("deploy", "--env", ENV, "--dry-run")

    assert plan.returncode == 0, plan.output
    assert "virtualenv from the release's requirements.txt on python3" in plan.output
    assert "uv venv + uv pip install -r when uv is on PATH" in plan.output
    assert not shop.venvs_dir.exists()
