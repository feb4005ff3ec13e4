"""The release snapshot against a real git repository (git is a real part, and cheap)."""

import subprocess
from pathlib import Path

import pytest

from deploytools.errors import OperatorError
from deploytools.hosts.local import LocalHost
from deploytools.release import check_tag_name, release_tag, take_snapshot


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "config", "user.email", "t@example.invalid")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "app.py").write_text("v = 1\n")
    git(tmp_path, "add", "app.py")
    git(tmp_path, "commit", "-qm", "one")
    return tmp_path


def test_snapshot_names_the_release_after_head(repo: Path) -> None:
    snap = take_snapshot(LocalHost(), str(repo), "prod", allow_dirty=False)
    assert snap.sha == git(repo, "rev-parse", "HEAD").strip()
    assert snap.tag.startswith("release-prod-") and snap.tag.endswith(f"-{snap.short}")
    assert not snap.dirty
    check_tag_name(LocalHost(), str(repo), snap.tag)


def test_a_dirty_tree_is_refused_unless_allowed(repo: Path) -> None:
    (repo / "app.py").write_text("v = 2\n")
    with pytest.raises(OperatorError, match="uncommitted changes"):
        take_snapshot(LocalHost(), str(repo), "prod", allow_dirty=False)
    assert take_snapshot(LocalHost(), str(repo), "prod", allow_dirty=True).dirty


@pytest.mark.parametrize(
    "bad", ["a..b", "x;rm -rf /", "$(id)", "tag with space", "-x", "a.lock", ""]
)
def test_bad_tag_names_are_refused_before_any_command(repo: Path, bad: str) -> None:
    with pytest.raises(OperatorError, match="not a valid tag name"):
        check_tag_name(LocalHost(), str(repo), bad)


def test_release_tag_is_sortable_utc() -> None:
    from datetime import UTC, datetime

    assert release_tag("local", "abc1234", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == (
        "release-local-20260102T030405Z-abc1234"
    )


def test_a_name_already_given_moves_to_the_next_free_second(repo: Path) -> None:
    """The same commit snapshotted again within a second (a quick failed run retried, a plan
    right after a deploy: a CI run's dry run named the release running) gets a name no git tag
    and no journal record has."""
    from datetime import UTC, datetime, timedelta

    short = git(repo, "rev-parse", "--short", "HEAD").strip()
    now = datetime.now(UTC)
    names = [release_tag("prod", short, now + timedelta(seconds=s)) for s in range(4)]
    for name in names[:2]:  # deploys that were recorded good
        git(repo, "tag", name)
    journal = set(names[2:])  # failed ones: in the journal only

    snap = take_snapshot(LocalHost(), str(repo), "prod", allow_dirty=False, taken=journal)

    assert snap.tag.startswith("release-prod-") and snap.tag.endswith(f"-{short}")
    assert snap.tag not in names and snap.tag > names[0]
    later = release_tag("prod", short, now + timedelta(seconds=4))
    assert release_tag("prod", short, now, taken=names) == later
