"""A recorded release's images on a host: the ids it was recorded with, or its own commit built.

The journal records each release's image ids (``images``: name:tag -> id). A tag is only a
name: removed, it can be given back to the recorded image while that is still there
(``docker image tag``); moved to another image (a build of other code under the release's
name), it is never used as it is. What cannot be given back is built again from the release's
commit in a git worktree, never from the working tree, and the new ids are journaled
(``images`` records), so that the next undo or rollback knows them.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from pathlib import Path
from typing import Any

from deploytools.commands import compose as compose_cmd
from deploytools.commands import git
from deploytools.config import EnvironmentSettings
from deploytools.errors import DeployFailure, OperatorError
from deploytools.release import looks_like_release, record_of, recorded_images
from deploytools.runtime.base import ImageCheck, Runtime
from deploytools.site.journal import Journal


def check_images(runtime: Runtime, journal: Journal, release: str) -> ImageCheck:
    """``release``'s images against the ids last recorded with it; changes nothing."""
    return runtime.image_check(release, recorded_images(journal.records(), release))


def plan_restore(
    settings: EnvironmentSettings, runtime: Runtime, journal: Journal, release: str
) -> list[str]:
    """What ``restore_images`` would do, in words and commands."""
    check = check_images(runtime, journal, release)
    if check.ready:
        return [f"images of {release} are present: no build"]
    lines = [
        " ".join(compose_cmd.tag_image(image_id, image))
        + (" (the tag names another image now)" if image in check.moved else " (tag removed)")
        for image, image_id in check.retag.items()
    ]
    if not check.missing:
        return [*lines, f"images of {release} are present by id: no build"]
    why = ", ".join(
        f"{image} ({'the tag names another image' if image in check.moved else 'gone'})"
        for image in check.missing
    )
    rebuild = f"build again from the release's commit: {why}"
    return [*lines, rebuild, *plan_build(settings, runtime, release)]


def restore_images(
    settings: EnvironmentSettings,
    runtime: Runtime,
    journal: Journal,
    release: str,
    *,
    why: str,
    build: bool = True,
) -> dict[str, Any]:
    """Make ``release``'s tags name its recorded images again, building from its commit what is
    gone unless ``build`` is off (``why`` says who asked, in the journal). Returns built,
    retagged and images."""
    check = check_images(runtime, journal, release)
    if check.retag:
        runtime.retag(check.retag)
    if not check.missing:
        recorded = recorded_images(journal.records(), release)
        return {"built": False, "retagged": sorted(check.retag), "images": recorded}
    record = record_of(journal.releases(), release)
    if record is None or not build:
        moved = [i for i in check.missing if i in check.moved]
        raise DeployFailure(
            f"images of release {release!r} are not usable: {', '.join(check.missing)}"
            + (f" (the tag of {', '.join(moved)} names another image now)" if moved else "")
            + ("" if record else "; the journal names no commit to build them from"),
            f"build them: invoke stack.build --env {settings.name} --release {release}",
        )
    images = build_from_commit(settings, runtime, release, str(record["sha"]))
    journal.append("images", tag=release, sha=record["sha"], images=images, by=why)
    return {"built": True, "retagged": sorted(check.retag), "images": images}


def build_release(
    settings: EnvironmentSettings, runtime: Runtime, journal: Journal, release: str
) -> tuple[dict[str, str], str | None]:
    """``stack.build``: a recorded release from its commit (journaling the new ids), any other
    name from the working tree; returns the ids and the commit built, if any."""
    record = record_of(journal.releases(), release)
    if record is not None:
        images = build_from_commit(settings, runtime, release, str(record["sha"]))
        journal.append("images", tag=release, sha=record["sha"], images=images, by="stack.build")
        return images, str(record["sha"])
    if looks_like_release(settings.name, release):
        raise OperatorError(
            f"{release!r} is named like a release of {settings.name}, but the journal has no "
            "record of it: building the working tree under that name would pass it off as one",
            "build a recorded release (invoke releases lists them), or give another name "
            "(e.g. --release dev)",
        )
    return runtime.build(release), None


def plan_build(settings: EnvironmentSettings, runtime: Runtime, release: str) -> list[str]:
    """What ``build_from_commit`` would run."""
    tree = worktree(settings, release)
    inputs = untracked_inputs(settings)
    return [
        " ".join(git.worktree_add(tree, "<its commit>")),
        *([f"link untracked build inputs: {', '.join(inputs)}"] if inputs else []),
        *runtime.plan_build(release),
        " ".join(git.worktree_remove(tree)),
    ]


def build_from_commit(
    settings: EnvironmentSettings, runtime: Runtime, release: str, ref: str
) -> dict[str, str]:
    """Build ``release`` from a git worktree of ``ref``; returns the new image ids.

    Same env file, state and data, other code: never the user's working tree (what git does
    not track comes from it: ``untracked_inputs``); the worktree is removed afterwards.
    """
    tree = worktree(settings, release)
    local, repo = runtime.control, str(settings.root)
    local.run(git.worktree_add(tree, ref), cwd=repo)
    try:
        for name in untracked_inputs(settings):
            _link_tree(settings.path(name), settings.root / tree / name)
        return runtime.build(release, source=settings.root / tree)
    finally:
        local.run(git.worktree_remove(tree), cwd=repo, check=False)


def worktree(settings: EnvironmentSettings, release: str) -> str:
    return f"{settings.state_dir}/{settings.name}/worktrees/{release}"


def untracked_inputs(settings: EnvironmentSettings) -> list[str]:
    """compose.untracked_inputs, relative to the project root."""
    conf = settings.compose
    if conf is None:
        return []
    return [posixpath.join(conf.directory, name) for name in conf.untracked_inputs]


def _link_tree(source: Path, target: Path) -> None:
    """Hard links of ``source`` at ``target`` (copies across file systems); a no-op if absent."""
    if not source.exists() or target.exists():
        return
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_link_or_copy)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(str(source), str(target))


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
