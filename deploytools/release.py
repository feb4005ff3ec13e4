"""What a release is: a git commit, a tag naming it, and the manifest the journal keeps."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from deploytools.commands import git
from deploytools.errors import CommandError, OperatorError
from deploytools.hosts.base import Host

TAG_CHARS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")


@dataclass(frozen=True)
class Snapshot:
    sha: str
    short: str
    tag: str
    dirty: bool


def release_tag(
    env: str, short_sha: str, when: datetime | None = None, taken: Collection[str] = ()
) -> str:
    """The release's name, by the second; a name already ``taken`` (the same commit deployed
    again within its second: a quick failed run retried, a plan right after a deploy) moves
    to the next free second, so that a release is never confused with another."""
    at = when or datetime.now(UTC)
    while (tag := f"release-{env}-{at:%Y%m%dT%H%M%SZ}-{short_sha}") in taken:
        at += timedelta(seconds=1)
    return tag


def looks_like_release(env: str, name: str) -> bool:
    """``name`` is one a deploy of ``env`` would give its release (``release_tag``): such
    names are the deploys' own."""
    return name.startswith(f"release-{env}-")


def take_snapshot(
    host: Host, repo: str, env: str, *, allow_dirty: bool, taken: Collection[str] = ()
) -> Snapshot:
    """Name the release after HEAD, with a name no git tag and none of ``taken`` (the
    journal's releases, failed ones included) has; refuse uncommitted changes unless allowed."""
    try:
        sha = host.run(git.rev_parse(), cwd=repo).stdout.strip()
        short = host.run(git.rev_parse(short=True), cwd=repo).stdout.strip()
    except CommandError as exc:
        raise OperatorError(
            f"{repo} is not a git checkout with a commit ({exc.output.strip()[:200]})",
            "deploy from a clone of the project's repository",
        ) from None
    dirty = bool(host.run(git.status_porcelain(), cwd=repo).stdout.strip())
    if dirty and not allow_dirty:
        raise OperatorError(
            f"the working tree at {repo} has uncommitted changes",
            "commit or stash them, or pass --allow-dirty (the release then records dirty=true)",
        )
    tagged = host.run(git.tags(f"release-{env}-*"), cwd=repo).stdout.split()
    return Snapshot(sha, short, release_tag(env, short, taken={*taken, *tagged}), dirty)


def check_tag_name(host: Host, repo: str, tag: str) -> str:
    """Reject a tag that git would refuse, before it reaches any command."""
    if (
        not TAG_CHARS.match(tag)
        or host.run(git.check_ref_format(tag), cwd=repo, check=False).returncode
    ):
        raise OperatorError(
            f"{tag!r} is not a valid tag name",
            "use a tag as listed by `invoke releases --env NAME` (git check-ref-format rules)",
        )
    return tag


def good_releases(releases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Releases that ended healthy, oldest first."""
    return [r for r in releases if r.get("result") == "ok"]


def kept_releases(releases: list[dict[str, Any]], last: int) -> dict[str, str]:
    """Tag -> why, for the artifacts retention keeps: those of the ``last`` distinct tags that
    ended good, newest first (a rollback to any of them needs its artifact)."""
    kept: dict[str, str] = {}
    for record in reversed(good_releases(releases)):
        if len(kept) == last:
            break
        kept.setdefault(str(record.get("tag")), f"one of the last {last} good releases")
    return kept


def rollback_targets(releases: list[dict[str, Any]], running: str | None) -> list[str]:
    """The tags a rollback can return to, oldest first: healthy deploys, not the running one."""
    good = (r.get("tag") for r in good_releases(releases) if r.get("action", "deploy") == "deploy")
    return sorted({str(tag) for tag in good if tag} - {running})


def record_of(releases: list[dict[str, Any]], tag: str) -> dict[str, Any] | None:
    """The newest release record of ``tag`` that names its commit (ok or failed: a tag always
    names the same commit)."""
    return next((r for r in reversed(releases) if r.get("tag") == tag and r.get("sha")), None)


def recorded_images(records: list[dict[str, Any]], tag: str) -> dict[str, str]:
    """Image -> id that ``tag`` was last known good with: its newest healthy release record,
    or a later ``images`` record (the images rebuilt from its commit by an undo or
    ``stack.build``). Empty when nothing was recorded."""
    for record in reversed(records):
        if record.get("tag") != tag:
            continue
        kind, result = record.get("kind"), record.get("result")
        if kind == "images" or (kind == "release" and result == "ok"):
            return dict(record.get("images") or {})
    return {}


def current_release(releases: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The release now running: the last healthy deploy or rollback, unless a later run's
    undo was abandoned (then the journal cannot tell: None, and the runtime is asked)."""
    for index in range(len(releases) - 1, -1, -1):
        if releases[index].get("result") == "ok":
            return releases[index]  # the journal's own record: `releases` marks it by identity
        if releases[index].get("undo_abandoned") is not None:
            return None
    return None
