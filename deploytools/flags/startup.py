"""Flags a service reads only when it starts (``start = [...]`` in the plan): a change to one
rewrites its ``FEATURE_*`` line in the env file and recreates those services, and only those,
host by host on the release each runs, each healthy before the next host.

The env file is the operator's, on this machine: rewritten atomically with its comments,
order and mode kept, never through a symlink (the link's target could be anything, and a
rename would replace the link by a file). What each host's services get is read from it
again, as a deploy would (remote compose hosts get their copy placed again).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from deploytools.errors import OperatorError, one_line
from deploytools.flagclient import env_name
from deploytools.flags.plan import parse_setting

if TYPE_CHECKING:
    from deploytools.flags.plan import FlagPlan
    from deploytools.site import Site


def env_lines(plan: FlagPlan, moves: Mapping[str, int | None]) -> dict[str, str]:
    """``FEATURE_*`` -> its new value, for the flags moved (flag -> percentage; None: back to
    not set, its default) that a service reads at start (as the app's client reads it)."""
    return {
        env_name(flag): str(to if to is not None else parse_setting(plan.flags[flag].default))
        for flag, to in moves.items()
        if flag in plan.flags and plan.flags[flag].start
    }


def services(plan: FlagPlan, moves: Mapping[str, int | None]) -> list[str]:
    """The services to recreate: those that read a moved flag at start."""
    return sorted({s for flag in moves if flag in plan.flags for s in plan.flags[flag].start})


def planned(site: Site, plan: FlagPlan, moves: Mapping[str, int | None]) -> list[str]:
    """What ``restart_for`` would do (a dry run says it; a bad env file is refused)."""
    lines = env_lines(plan, moves)
    if not lines:
        return []
    path = writable_env_file(site)
    said = ", ".join(f"{key}={value}" for key, value in lines.items())
    return [f"set {said} in {path}", f"recreate {', '.join(services(plan, moves))}"]


def restart_for(site: Site, plan: FlagPlan, moves: Mapping[str, int | None]) -> None:
    """After the state is written: the env file's lines of the start-time flags ``moves``
    changed, and their services recreated (journaled: which, where)."""
    lines = env_lines(plan, moves)
    if not lines:
        return
    write_env_file(site, lines)
    names = services(plan, moves)
    from deploytools.site import Site

    record = {"services": names, "env": sorted(lines)}
    site.journal.append("flags.recreate", **record, result="started")
    try:
        with Site(site.settings, site.ui) as fresh:  # the env file as it is now
            done = recreate(fresh, names)
    except BaseException as exc:
        site.journal.append("flags.recreate", **record, result="failed", error=one_line(exc))
        raise
    site.journal.append("flags.recreate", **record, result="ok", hosts=done)
    site.ui.info(f"recreated {', '.join(names)} on {', '.join(done) or 'no host: none runs'}")


def writable_env_file(site: Site) -> Path:
    """The env file, if a flag change may rewrite it; else an operator error, before anything
    changes."""
    path = site.settings.path(site.settings.env_file)
    fix = "a flag read at start is kept in it: make it a regular file this user can write"
    if path.is_symlink():
        raise OperatorError(
            f"env file {path} is a symlink: a flag change never writes through one", fix
        )
    if not path.is_file():
        raise OperatorError(f"env file {path} not found", "create it (invoke env.init)")
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise OperatorError(f"env file {path} (or its directory) is not writable", fix)
    return path


def write_env_file(site: Site, lines: dict[str, str]) -> None:
    """Set ``lines`` in the env file (temp file and rename: mode, comments and order kept)."""
    from deploytools.env import file as envfile

    path = writable_env_file(site)
    doc = envfile.parse(path.read_bytes())
    for key, value in lines.items():
        doc = doc.set(key, value)
    site.control.write_file(str(path), doc.render().encode("utf-8"))


def recreate(site: Site, names: list[str]) -> list[str]:
    """Replace ``names`` on every host that runs them, one host at a time, on the release it
    runs, and wait until healthy there; the hosts done. ``site`` must be new: it reads the
    env file as it is now."""
    from deploytools.probes.health import wait_healthy

    done = []
    for name in site.host_names:
        host = site.host(name)
        runtime = site.runtime(host)
        release = runtime.current_release()
        mine = site.settings.services_on(name, names)
        if release is None or mine == []:
            continue
        if site.settings.hosts and site.settings.runtime == "compose":
            from deploytools.steps.ship import place_env_file

            place_env_file(site.settings, host)
        runtime.up(release, mine if mine is not None else names)
        wait_healthy(
            site.settings,
            runtime,
            site.ui,
            host=host,
            env_values=site.values_for(name),
            services=mine if mine is not None else names,
        )
        done.append(name)
    return done
