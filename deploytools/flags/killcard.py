"""The kill card: what ``flags.kill`` needs of an environment that runs on this machine,
kept by the last flags command that loaded its config, so that an emergency kill writes the
state file before pydantic and the config are imported (that load is ~0.25 s of the half
second a kill has: the apps look at the file every 200 ms).

A card is found by the config file's path and the environment named, and used only while
its key still matches: a digest of what the environment's settings and flag plan are made of
(the config file and ``config/flags.toml``, byte for byte; invoke's ``deploytools.*``
settings, INVOKE_DEPLOYTOOLS_* included; the environment named; deploytools' version and the
card's format). Any change misses it, and the kill takes the full path, which keeps a new
card. Only a kill of flags that no service reads at start can use one (those need the env
file and a restart), and only for an environment without SSH hosts. A card holds paths and
flag names, no secret; it lives in the user's cache directory, not in the project.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from deploytools import __version__
from deploytools.configpath import DEFAULT_CONFIG, find_config
from deploytools.errors import OperatorError
from deploytools.flags import DEFAULT_PLAN
from deploytools.hosts.local import LocalHost
from deploytools.site.journal import Journal
from deploytools.site.lock import FLAGS_LOCK, DeployLock

if TYPE_CHECKING:
    from deploytools.flags.plan import FlagPlan
    from deploytools.site import Site
    from deploytools.ui import Ui

FORMAT = 1  # raise it when what a card holds, or what it means, changes
T = TypeVar("T")


@dataclass(frozen=True)
class CardKey:
    file: Path  # where the card of this config file and environment is kept
    digest: str  # what its settings are made of, now


@dataclass(frozen=True)
class KillCard:
    digest: str
    env: str
    state_dir: str
    flags_file: str
    command_timeout: float
    kill_switch: dict[str, bool]  # every flag of the plan: may it be killed
    live_only: list[str]  # the flags no service reads at start

    def covers(self, flags: Sequence[str]) -> bool:
        """Whether a kill of ``flags`` (empty: ``--all``) is the state file alone."""
        names = flags or [name for name, allowed in self.kill_switch.items() if allowed]
        return all(self.kill_switch.get(name) and name in self.live_only for name in names)


def key_of(conf: Mapping[str, Any], env: str | None) -> CardKey | None:
    """The key for invoke settings ``conf`` and the environment named (None: the default);
    None when there is no config file (the full path says so)."""
    try:
        path = find_config(conf.get("config") or DEFAULT_CONFIG)
    except OperatorError:
        return None
    digest = hashlib.sha256()
    for part in (
        str(FORMAT),
        __version__,
        str(path),
        env or "",
        json.dumps(conf, sort_keys=True, default=str),
    ):
        digest.update(part.encode() + b"\0")
    for source in (path, path.parent.parent / DEFAULT_PLAN):  # the project root's
        try:
            digest.update(source.read_bytes() + b"\0")
        except OSError as exc:
            digest.update(f"{type(exc).__name__}\0".encode())
    name = hashlib.sha256(f"{path}\0{env or ''}".encode()).hexdigest()[:32]
    return CardKey(_cards() / f"{name}.json", digest.hexdigest())


def find(key: CardKey | None, flags: Sequence[str]) -> KillCard | None:
    """The card of ``key`` if it is current and covers a kill of ``flags``."""
    if key is None:
        return None
    try:
        card = KillCard(**json.loads(key.file.read_bytes()))
        usable = card.digest == key.digest and card.covers(flags)
    except (OSError, ValueError, TypeError, AttributeError):  # none, or not one we wrote
        return None
    return card if usable else None


def keep(key: CardKey | None, site: Site, plan: FlagPlan) -> None:
    """Keep the card of a site whose config and plan loaded (replaced atomically, 0600).

    A card that cannot be written (a read-only home) only makes the next kill slower."""
    if key is None or site.settings.hosts:
        return
    card = KillCard(
        digest=key.digest,
        env=site.settings.name,
        state_dir=site.state_dir,
        flags_file=site.flags_file(site.host_names[0]),
        command_timeout=site.settings.timeouts.command,
        kill_switch={name: flag.kill_switch for name, flag in plan.flags.items()},
        live_only=[name for name, flag in plan.flags.items() if not flag.start],
    )
    try:  # the control machine's atomic write: a failed one leaves no temp file behind
        site.control.makedirs(str(key.file.parent))
        site.control.write_file(str(key.file), json.dumps(asdict(card)).encode(), mode=0o600)
    except OSError:
        return


class CardSite:
    """The ``FlagSite`` of a card: this machine, the card's paths."""

    def __init__(self, card: KillCard, ui: Ui) -> None:
        self.ui = ui
        self.card = card
        self.primary = LocalHost(command_timeout=card.command_timeout)
        self.journal = Journal(self.primary, card.state_dir, ui.redact)

    @property
    def host_names(self) -> list[str]:
        return [self.primary.name]

    def host(self, name: str) -> LocalHost:
        return self.primary

    def on_each(self, names: Sequence[str], work: Callable[[str], T]) -> list[T]:
        return [work(name) for name in names]

    def flags_file(self, name: str) -> str:
        return self.card.flags_file

    def flags_lock(self) -> DeployLock:
        timeout = self.card.command_timeout
        return DeployLock(
            self.primary, self.card.state_dir, timeout, env=self.card.env, name=FLAGS_LOCK
        )


def _cards() -> Path:
    """The user's cache directory (XDG on POSIX, LOCALAPPDATA on Windows)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA")
    return (Path(base) if base else Path.home() / ".cache") / "deploytools" / "kill-cards"
